"""How a run that has no child process still shows it is alive (an HTTP request)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from scheduler_app import runs


@contextmanager
def beating(run_id: int, every: float) -> Iterator[None]:
    """Write the run's heartbeat every ``every`` seconds from a thread while the caller
    works, so a long request is not taken for a dead worker."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(every) and runs.beat(run_id):
                pass
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=loop, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
