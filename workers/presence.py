"""A thread in every worker that writes its presence to Redis (scheduler_app/presence.py),
which is how GET /metrics counts the workers up without asking them, and how the fleet
sees its nodes online (workers/fleet.py, given each write's answer: drain or not)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings

from scheduler_app import presence

logger = logging.getLogger(__name__)


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


# Called after each write with the Redis client, the node's draining flag in Redis (None
# when Redis did not answer) and the write's number (0, 1, ...).
AfterWrite = Callable[[redis.Redis, "bool | None", int], None]


def start(node: str, every: float, after: AfterWrite | None = None) -> threading.Event:
    """Write ``node``'s presence now and every ``every`` seconds; setting the returned
    event stops the thread."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_loop, args=(node, every, stop, after), name="presence", daemon=True
    )
    thread.start()
    return stop


def _loop(node: str, every: float, stop: threading.Event, after: AfterWrite | None) -> None:
    redis_client = client()
    tick = 0
    while True:
        draining = None
        try:
            draining = presence.worker_seen(redis_client, node)
        except redis.RedisError as exc:  # Redis away: the worker is counted down meanwhile
            logger.debug("presence: Redis does not answer: %s", exc)
        if after is not None:
            try:
                after(redis_client, draining, tick)
            except Exception:  # the thread must go on: the next write tries again
                logger.exception("presence: the fleet's update failed")
        tick += 1
        if stop.wait(every):
            return


def stop(node: str, running: threading.Event | None) -> None:
    """Stop writing and leave the set at once."""
    if running is not None:
        running.set()
    try:
        presence.worker_gone(client(), node)
    except redis.RedisError as exc:
        logger.debug("presence: Redis does not answer: %s", exc)
