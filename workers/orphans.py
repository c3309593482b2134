"""What a dead worker process leaves behind: the process group of a job it ran.

A job runs in a session of its own (see executors/process.py), so when its pool
process dies (killed by the job, or by the out-of-memory killer) the job goes on,
orphaned. Its node kills the group once the run is declared lost, after checking
that the group still belongs to that run: the environment of every job process
names its run (SCHEDULER_RUN_ID), and a pid may have been reused since.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def belongs_to_run(pid: int, run_id: int) -> bool:
    """Whether process ``pid`` is a job process of run ``run_id``."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
    return f"SCHEDULER_RUN_ID={run_id}".encode() in environ.split(b"\0")


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (its leader may have exited already)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members


def kill_group_of_run(pgid: int, run_id: int) -> bool:
    """SIGKILL the process group ``pgid`` if its processes are those of run ``run_id``."""
    if not any(belongs_to_run(pid, run_id) for pid in group_members(pgid)):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False
