"""A thread in every worker that writes its presence to Redis (scheduler_app/presence.py),
which is how GET /metrics counts the workers up without asking them."""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings

from scheduler_app import presence

logger = logging.getLogger(__name__)


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def start(node: str, every: float) -> threading.Event:
    """Write ``node``'s presence now and every ``every`` seconds; setting the returned
    event stops the thread."""
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(node, every, stop), name="presence", daemon=True)
    thread.start()
    return stop


def _loop(node: str, every: float, stop: threading.Event) -> None:
    redis_client = client()
    while True:
        try:
            presence.worker_seen(redis_client, node)
        except redis.RedisError as exc:  # Redis away: the worker is counted down meanwhile
            logger.debug("presence: Redis does not answer: %s", exc)
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
