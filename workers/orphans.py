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


def processes_of_run(marks: dict[str, str]) -> list[int]:
    """The pids on this machine (that we may read) whose environment holds ``marks``,
    the variables that name a run (see executors/child.py: run_marks). Plain os calls
    and a substring test per process: every run in marker mode ends with this scan."""
    wanted = [f"\0{name}={value}\0".encode() for name, value in marks.items()]
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (environ := _environ(pid)) and all(w in environ for w in wanted):
            found.append(int(pid))
    return found


def _environ(pid: str) -> bytes:
    """The process's environment, each entry between NULs; empty when gone or not ours."""
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY)
    except OSError:
        return b""
    chunks = [b"\0"]
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return b"".join([*chunks, b"\0"])


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
