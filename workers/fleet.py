"""This worker as a node of the fleet (scheduler_app/nodes.py): it registers itself when
it starts, says it is alive through its presence thread (workers/presence.py), and
drains when an operator says so: it stops consuming its queues (its own direct queue
stays, for the messages meant for it alone) and gives back any run it had already
taken from them, so it finishes what it runs and takes nothing new.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import socket
import threading
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

import redis
from celery.utils import worker_direct
from django.conf import settings
from django.db import connection

from config.celery import app
from scheduler_app import nodes, presence, selectors
from workers import reporting

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT = 5.0


class LabelsError(SystemExit):
    """SCHEDULER_NODE_LABELS does not parse: the worker does not start (a SystemExit,
    which Celery's signal dispatch does not swallow)."""


class Drain:
    """Whether this worker drains, and the queues it stops and resumes consuming.

    The flag is in shared memory made before the pool forks its processes, so a pool
    process about to claim a run sees what the main process's presence thread set."""

    def __init__(self) -> None:
        self.hostname = ""
        self.queues: list[str] = []
        self.registration: dict[str, Any] = {}
        self.shared = multiprocessing.RawValue(ctypes.c_bool, False)
        self.lock = threading.Lock()

    @property
    def draining(self) -> bool:
        return bool(self.shared.value)

    def apply(self, draining: bool) -> None:
        """Stop (or resume) consuming the node's queues when the operator's word changes."""
        with self.lock:
            if draining == self.draining or not self.hostname:
                return
            self.shared.value = draining
            control = app.control.cancel_consumer if draining else app.control.add_consumer
            for queue in self.queues:
                control(queue, destination=[self.hostname], reply=True, timeout=CONTROL_TIMEOUT)
            now = "drains: it takes no new runs" if draining else "takes runs again"
            logger.warning("node %s %s", self.hostname, now)


DRAIN = Drain()


def labels() -> dict[str, str]:
    try:
        return selectors.parse_labels(settings.SCHEDULER_NODE_LABELS)
    except selectors.SelectorError as exc:
        raise LabelsError(
            f"SCHEDULER_NODE_LABELS={settings.SCHEDULER_NODE_LABELS!r}: {exc}"
        ) from None


def after_presence(client: redis.Redis, draining: bool | None, tick: int) -> None:
    """After each presence write: drain (or resume) as Redis says; every
    SCHEDULER_NODE_DB_EVERY seconds (and first), refresh the row's last_seen and take
    its draining flag as the truth, which puts it back in Redis if Redis lost it."""
    every = max(1, round(settings.SCHEDULER_NODE_DB_EVERY / settings.WORKER_PRESENCE_EVERY))
    if tick % every == 0:
        try:
            in_row = nodes.touch(DRAIN.hostname)
            if in_row is None:  # its row was deleted (by an operator, a restore): again
                in_row = nodes.register(DRAIN.hostname, **DRAIN.registration).draining
        except reporting.DATABASE_AWAY as exc:  # Redis still says it is alive
            logger.debug("fleet: the database does not answer: %s", exc)
            in_row = None
        finally:
            connection.close()  # this thread's own connection: not kept between refreshes
        if in_row is not None and in_row != draining:
            presence.set_draining(client, DRAIN.hostname, in_row)
            draining = in_row
    if draining is not None:
        DRAIN.apply(draining)


def register(consumer: Any) -> None:
    """Register this worker as a node (its presence thread applies a drain left on it)."""
    hostname = consumer.hostname
    queues = sorted(
        name
        for name in consumer.app.amqp.queues.consume_from
        if name != worker_direct(hostname).name
    )
    DRAIN.registration = {
        "name": settings.SCHEDULER_NODE_NAME,
        "host": socket.gethostname(),
        "address": settings.SCHEDULER_NODE_ADDRESS or broker_address(),
        "queues": queues,
        "labels": labels(),
        "version": _version(),
        "presence_every": settings.WORKER_PRESENCE_EVERY,
    }
    nodes.register(hostname, **DRAIN.registration)
    DRAIN.hostname, DRAIN.queues = hostname, queues


def broker_address() -> str:
    """The local address this machine reaches the broker from (no packet is sent)."""
    url = urlsplit(settings.CELERY_BROKER_URL)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((url.hostname or "127.0.0.1", url.port or 6379))
            return probe.getsockname()[0]
    except OSError:
        return ""


def _version() -> str:
    try:
        return metadata.version("cronfleet")
    except metadata.PackageNotFoundError:
        return ""
