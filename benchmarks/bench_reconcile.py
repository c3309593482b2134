"""Rebuilding the RedBeat schedule from N jobs (what beat does at start and after a flush).

Uses a throw-away SQLite database and a private Redis. The baseline is the same
number of bare Redis HSET+ZADD pipelines, so the ratio is our overhead per entry.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler_app.embedded_redis import EmbeddedRedis

N_JOBS = [100, 1000]


def setup() -> EmbeddedRedis:
    tmp = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    os.environ["VAR_DIR"] = str(tmp)
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    os.environ.setdefault("DEBUG", "1")
    from scheduler_app.embedded_redis import free_port

    server = EmbeddedRedis.start(tmp / "redis", free_port(), persist=False)
    os.environ["REDIS_URL"] = server.url
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return server


def main() -> None:
    server = setup()
    try:
        measure()
    finally:
        server.stop()


def measure() -> None:
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from scheduler_app import redbeat
    from scheduler_app.models import Job

    client = redis.Redis.from_url(settings.REDIS_URL)
    owner = get_user_model().objects.create_user("bench")
    made = 0
    for n in N_JOBS:
        print(f"creating jobs up to {n} ...", flush=True)
        for i in range(made, n):
            Job.objects.create(
                owner=owner,
                name=f"job-{i}",
                payload={"command": "true"},
                schedule={"type": "cron", "expression": f"{i % 60} * * * *"},
            )
        made = n
        client.flushdb()
        started = time.perf_counter()
        saved, _ = redbeat.reconcile()
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(n):
            with client.pipeline() as pipe:
                pipe.hset(f"bench:{i}", "definition", "{}")
                pipe.zadd("bench:schedule", {f"bench:{i}": i})
                pipe.execute()
        baseline = time.perf_counter() - started
        print(
            f"{saved:5d} jobs: reconcile {ours:.3f} s ({ours / n * 1e3:.2f} ms/job), "
            f"bare pipelines {baseline:.3f} s, ratio {ours / baseline:.1f}x"
        )


if __name__ == "__main__":
    main()
