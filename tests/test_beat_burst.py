"""A real beat started with more due work than a whole tick could send within its lock:
with a 2 s lock and 3,000 jobs due at once (bare RedBeat sends about 300 a second), every
due job is sent exactly once and the lock is never lost. No worker reads that Redis, so
the messages stay where they can be counted."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from scheduler_app.embedded_redis import EmbeddedRedis, free_port
from scheduler_app.models import Job
from tests.helpers import Stack, wait_for

pytestmark = pytest.mark.stack
DUE = 3000
LOCK_TIMEOUT = "2"
QUEUE = "burst"


@pytest.fixture
def own_redis(live: Stack, tmp_path) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A Redis for a beat of its own, no worker on it; the shared beat is stopped (``live``
    starts it again after)."""
    server = EmbeddedRedis.start(tmp_path / "redis", free_port(), persist=False)
    live.stop("beat")
    yield live, server
    if "burst-beat" in live.procs:
        live.stop("burst-beat")
    server.stop()


def sent(url: str) -> Counter[int]:
    """How many fire_job messages wait for each job, in the queue's lists."""
    client = redis.Redis.from_url(url)
    try:
        counts: Counter[int] = Counter()
        for key in client.scan_iter(QUEUE + "*"):
            for raw in client.lrange(key, 0, -1):
                args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
                counts[args[0]] += 1
        return counts
    finally:
        client.close()


def test_a_burst_larger_than_the_lock_allows_is_sent_once_and_keeps_the_lock(own_redis, owner):
    live, server = own_redis
    start = datetime.now(UTC) - timedelta(hours=1, minutes=1)  # first fire: a minute ago
    jobs = Job.objects.bulk_create(
        Job(owner=owner, name=f"burst-{i}", payload={"command": "true"}, queue=QUEUE,
            schedule={"type": "interval", "every": 1, "unit": "hours"}, schedule_start=start)
        for i in range(DUE)
    )  # fmt: skip
    try:
        live.start("burst-beat", ["beat", "-l", "info"], REDIS_URL=server.url,
                   REDBEAT_LOCK_TIMEOUT=LOCK_TIMEOUT)  # fmt: skip

        def all_sent() -> bool:
            """every due job was sent"""
            return len(sent(server.url)) == DUE

        wait_for(all_sent, timeout=120, interval=1)
        wait_for(lambda: "reconciled schedules" in live.log("burst-beat"), timeout=30)
        counts = sent(server.url)
        log = live.log("burst-beat")
    finally:
        Job.objects.filter(id__in=[job.id for job in jobs]).delete()

    assert set(counts) == {job.id for job in jobs}
    assert set(counts.values()) == {1}  # each exactly once
    assert "lost the RedBeat lock" not in log
    assert live.procs["burst-beat"].poll() is None  # beat still running
