"""How a run's child is started: the cronfleet-spawn launcher, or Python's preexec_fn.

The launcher (spawn.c, built by ``make install`` into the virtualenv's bin/, next to the
worker's own Python: a directory job code cannot write) does the child's setup in C and
is started through subprocess's vfork path; its run's cgroup it enters at birth
(clone3), which spares the slow migration of a process into a cgroup. Without it (a
``pip install`` alone) the same setup runs as a preexec_fn after a full fork of the
worker (SCHEDULER_SPAWN=python forces that).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings

NAME = "cronfleet-spawn"
# The launcher's exit codes when the program did not start (spawn.c): its setup failed
# (cgroup, limits, identity, working directory), the program cannot be executed, or it
# was not found; its last line of output then says why, after "cronfleet-spawn: ".
START_FAILURES = (125, 126, 127)


def launcher_path() -> Path:
    return Path(sys.prefix) / "bin" / NAME


def launcher() -> str | None:
    """The launcher to start children with, or None for Python's preexec_fn."""
    if settings.SCHEDULER_SPAWN == "python":
        return None
    path = launcher_path()
    return str(path) if os.access(path, os.X_OK) else None


def mode() -> str:
    """How children are started on this worker, said in its log at start."""
    if (path := launcher()) is not None:
        return f"the {NAME} launcher ({path})"
    if settings.SCHEDULER_SPAWN == "python":
        return "a Python preexec_fn (SCHEDULER_SPAWN=python)"
    return (
        f"a Python preexec_fn, slower: there is no {launcher_path()} "
        "(`make install` builds it; it needs a C compiler)"
    )


def start_failure(code: int | None, output: str) -> str | None:
    """Why the launcher could not start the program, from its last line; None when the
    program ran (a program's own exit code 127 has no such line)."""
    last = output.rstrip("\n").rpartition("\n")[2]
    if code in START_FAILURES and last.startswith(f"{NAME}: "):
        return last.removeprefix(f"{NAME}: ")
    return None
