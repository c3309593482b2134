"""What a dead worker process leaves behind: the processes of a job it ran.

A job runs in a session of its own (see executors/process.py), so when its pool
process dies (killed by the job, or by the out-of-memory killer) the job goes on,
orphaned. Once the run is declared lost, its node kills them. They are found by
their environment, which names their run and which every process the job starts
inherits, so nothing depends on a pid recorded in time. The run's id, job and
scheduled time together: two scheduler databases on one machine reuse ids.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def processes_of_run(marks: dict[str, str]) -> list[int]:
    """The pids on this machine (that we may read) whose environment holds ``marks``,
    the variables that name a run (see executors/child.py: run_marks)."""
    wanted = {f"{name}={value}".encode() for name, value in marks.items()}
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if wanted <= set(environ.read_bytes().split(b"\0")):
                found.append(int(environ.parent.name))
    return found


def kill_run_processes(marks: dict[str, str]) -> int:
    """SIGKILL the process groups of the run's processes; how many groups."""
    groups = set()
    for pid in processes_of_run(marks):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # never the worker itself
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return len(groups)
