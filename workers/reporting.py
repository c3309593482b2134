"""How a running job reports back, and how its outcome survives a database away.

Writes made while a job runs (output, heartbeat) are best effort: with the
database away for a moment the job goes on, and the next flush writes again. The
outcome is not: :func:`persist` keeps trying, with backoff, for a bounded time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, close_old_connections, connection

from scheduler_app import runs

logger = logging.getLogger(__name__)

T = TypeVar("T")
# What a database that is away (restarting, unreachable, locked) raises.
DATABASE_AWAY = (OperationalError, InterfaceError)
# PostgreSQL refuses NUL in text and in JSON strings; a job may print one (a binary
# blob, a careless `cat`), and its run must still end, with the rest of its output.
NUL, NUL_SHOWN_AS = "\x00", "\ufffd"


def storable(value: Any) -> Any:
    """``value`` (a string, or JSON: dicts, lists) with every NUL replaced by U+FFFD,
    as the database of either kind can keep it."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_SHOWN_AS) if NUL in value else value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def save_output(run_id: int, output: str, pid: int | None = None) -> bool:
    """The output so far, the heartbeat and the child's pid (from the first flush on: a
    job that ends within a flush costs no write while it runs); False once the
    run was cancelled or lost. With the database away the job goes on (True): its next
    flush writes again."""
    return _tolerant(lambda: runs.save_output(run_id, storable(output), pid), run_id)


def _tolerant(write: Callable[[], bool], run_id: int) -> bool:
    try:
        return write()
    except DATABASE_AWAY as exc:
        logger.warning("run %s: could not report to the database (%s); the job goes on",
                       run_id, exc)  # fmt: skip
        close_old_connections()
        return True


@contextmanager
def beating(
    run_id: int, every: float, on_stop: Callable[[], object] | None = None
) -> Iterator[None]:
    """Write the run's heartbeat every ``every`` seconds from a thread while the caller
    works, so a long request is not taken for a dead worker. When the run is no longer
    running (cancelled, or lost) the beats stop and ``on_stop()`` is called, from that
    thread: it stops the caller's work (an HTTP request aborts its socket)."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(every):
                if not _tolerant(lambda: runs.beat(run_id), run_id):
                    if on_stop is not None and not stop.is_set():
                        on_stop()
                    break
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=loop, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def persist(
    write: Callable[[], T],
    within: float,
    sleep: Callable[[float], object] = time.sleep,
    most: float = 30.0,
) -> T:
    """``write()``, tried again with backoff (1 s doubling, at most ``most`` s) while the
    database is away, for up to ``within`` seconds; then the last error is raised.

    A run's outcome waits here without a heartbeat: once the database is back, the
    reaper suspects the silent run at its next sweep and loses it at the one after.
    So the caller keeps ``most`` under the time between sweeps, and the outcome is
    written first."""
    deadline = time.monotonic() + within
    delay = min(1.0, most)
    while True:
        try:
            return write()
        except DATABASE_AWAY as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("the database is away (%s); trying again in %.0f s", exc, delay)
            connection.close()  # the next try opens a new one
            sleep(delay)
            delay = min(delay * 2, most)
