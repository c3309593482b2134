"""The watchdog: a thread in every worker that runs the dead-man's switch
(:func:`scheduler_app.alerts.check_all`) every SCHEDULER_ALERT_CHECK_EVERY seconds.

It lives in the workers, not in beat, so that a beat that stopped is noticed. Of
many workers, one checks per period: the first to take a short Redis lease. With
Redis away every worker checks; the alerts' unique constraint keeps that harmless.
"""

from __future__ import annotations

import logging
import threading
import uuid

import redis
from django.conf import settings
from django.db import connection

from scheduler_app import alerts

logger = logging.getLogger(__name__)

LEASE_KEY = "cronfleet:alerts:lease"


def start(every: float) -> threading.Event:
    """Start the watchdog thread; setting the returned event stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop, every), name="watchdog", daemon=True)
    thread.start()
    return stop


def _loop(stop: threading.Event, every: float) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    me = uuid.uuid4().hex
    while not stop.wait(every):
        if not _my_turn(client, me, every):
            continue
        try:
            alerts.check_all()
        except Exception:
            logger.exception("watchdog: the alert checks failed; trying again in %s s", every)
        finally:
            connection.close()  # this thread's own; a database that went away reconnects


def _my_turn(client: redis.Redis, me: str, every: float) -> bool:
    """Whether this worker checks this period: it took the lease, or Redis is away."""
    try:
        return bool(client.set(LEASE_KEY, me, nx=True, px=max(int(every * 900), 100)))
    except redis.RedisError:
        return True
