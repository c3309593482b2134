"""Redis away for a while, on a stack of its own: beat waits for it instead of dying,
and when it answers again the jobs saved meanwhile are scheduled at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from scheduler_app.embedded_redis import EmbeddedRedis, free_port
from scheduler_app.models import Run
from tests.helpers import Stack, create_job, wait_for, wait_runs

pytestmark = pytest.mark.stack


@pytest.fixture
def own_redis(live: Stack, tmp_path) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A Redis keeping its data in ``tmp_path/redis``, for a beat and a worker of its own;
    the shared beat is stopped, so only that beat fires (``live`` starts it again after)."""
    redis = EmbeddedRedis.start(tmp_path / "redis", free_port(), persist=True)
    live.stop("beat")
    yield live, redis
    for name in ("own-beat", "own-worker"):
        if name in live.procs:
            live.stop(name)
    redis.stop()


def test_beat_outlives_a_redis_outage_and_schedules_what_was_saved_meanwhile(
    own_redis, api, tmp_path
):
    live, redis = own_redis
    before = create_job(api, name="before", payload={"command": "true"}, schedule="every 2 seconds")
    live.start("own-beat", ["beat", "-l", "info"], REDIS_URL=redis.url)
    live.start_worker(name="own-worker", node="w8", REDIS_URL=redis.url)
    wait_runs(before["id"], 1, timeout=40, status=Run.Status.SUCCEEDED)

    redis.stop()
    during = create_job(api, name="during", payload={"command": "true"}, schedule="every 2 seconds")
    time.sleep(4)  # Redis stays away over two of beat's looks (every 2 s) at it
    assert live.procs["own-beat"].poll() is None, live.log("own-beat")[-2000:]

    restarted = EmbeddedRedis.start(tmp_path / "redis", redis.port, persist=True)
    try:
        wait_runs(during["id"], 1, timeout=40, status=Run.Status.SUCCEEDED)
        wait_for(lambda: "Redis answers" in live.log("own-beat"), timeout=10)
    finally:
        restarted.stop()
