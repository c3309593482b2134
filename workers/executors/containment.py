"""Nothing a run started survives it: every process of a run is found and killed at its end.

Two modes, chosen per run (SCHEDULER_CONTAINMENT: ``auto``, the default, or ``marker``):

- **cgroup** (cgroup v2 with ``cgroup.kill``, the worker allowed to make cgroups): the
  child joins a cgroup of its own before it runs, so everything it starts is in it,
  whatever it does (setsid, double fork, a cleared environment); at the end one write
  to ``cgroup.kill`` kills them all, and the cgroup is removed.
- **marker**: every process of the run carries the run's marks in its environment
  (SCHEDULER_JOB_ID, SCHEDULER_RUN_ID, SCHEDULER_SCHEDULED_FOR); at the end /proc is
  scanned and every process carrying them is killed, scan after scan until none is
  left. A process that clears or rewrites its own environment escapes this.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import secrets
import select
import signal
import time
from pathlib import Path

from django.conf import settings

from workers import orphans

logger = logging.getLogger(__name__)

MARKER_ROUNDS = 50  # scans of /proc at most: each kills what the last one left forking
EMPTY_WAIT = 5.0  # seconds to wait for a killed cgroup to empty before leaving it


@functools.cache
def cgroup_base() -> Path | None:
    """The directory of this process's own cgroup v2, or None without one: read once per
    process (a worker is not moved between cgroups; if its cgroup went away, making a
    run's cgroup fails and the run falls back to its marks)."""
    mount = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                mount = Path(fields[1])
                break
    if mount is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                base = mount / line[3:].lstrip("/")
                return base if (base / "cgroup.procs").exists() else None
    return None


class Containment:
    """The processes of one run: ``join()`` in the child before it runs (only system
    calls: safe after fork), ``kill()`` in the worker when the run's child has ended."""

    mode = "marker"
    cgroup: Path | None = None

    def __init__(self, marks: dict[str, str]) -> None:
        self.marks = marks

    def join(self) -> None:
        """Nothing to do: the marks are in the child's environment."""

    def kill(self) -> int:
        """Kill every process carrying the run's marks; how many were killed."""
        killed = 0
        for _ in range(MARKER_ROUNDS):
            pids = [pid for pid in orphans.processes_of_run(self.marks) if pid != os.getpid()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.01)
        return killed


class CgroupContainment(Containment):
    """A cgroup of the run's own. The launcher (spawn.c) starts the program in it; without
    one, the child joins it after fork (a migration: slower, it waits for the kernel)."""

    mode = "cgroup"

    def __init__(self, marks: dict[str, str], path: Path) -> None:
        super().__init__(marks)
        self.cgroup = self.path = path

    def join(self) -> None:
        procs = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        os.write(procs, b"0")
        os.close(procs)

    def kill(self) -> int:
        """Kill what is left in the cgroup (nothing, mostly: then only rmdir), wait for it
        to empty, remove it; how many processes were killed."""
        events = os.open(self.path / "cgroup.events", os.O_RDONLY)
        try:
            count = 0
            if _populated(events):
                count = len((self.path / "cgroup.procs").read_text().split())
                (self.path / "cgroup.kill").write_text("1")
                if not _wait_empty(events):
                    logger.warning("cgroup %s still holds processes after kill", self.path)
                    return count
        finally:
            os.close(events)
        _remove(self.path)
        return count


def _remove(path: Path) -> None:
    """Remove an emptied cgroup; a killed process whose parent died with it (a lost run)
    may keep it busy until it is reaped, so wait for that (at most EMPTY_WAIT s)."""
    deadline = time.monotonic() + EMPTY_WAIT
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                logger.warning("cgroup %s could not be removed: %s", path, exc)
                return
        time.sleep(0.01)


def _populated(events: int) -> bool:
    return b"populated 1" in os.pread(events, 4096, 0)


def _wait_empty(events: int) -> bool:
    """Wait (at most EMPTY_WAIT s) for the cgroup of ``events``, its open cgroup.events, to
    empty; the kernel wakes a poll for POLLPRI when that file changes."""
    watch = select.poll()
    watch.register(events, select.POLLPRI)
    deadline = time.monotonic() + EMPTY_WAIT
    while _populated(events):
        if (left := deadline - time.monotonic()) <= 0:
            return False
        watch.poll(min(left, 0.1) * 1000)
    return True


def for_run(marks: dict[str, str]) -> Containment:
    """A cgroup for the run where this machine allows one, else the marks."""
    if settings.SCHEDULER_CONTAINMENT != "marker" and (base := cgroup_base()) is not None:
        path = base / f"{_name_of(marks)}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            if not (path / "cgroup.kill").exists():  # Linux before 5.14
                path.rmdir()
                return Containment(marks)
            return CgroupContainment(marks, path)
        except OSError as exc:
            logger.debug("no cgroup for the run (%s): processes tracked by their marks", exc)
            with contextlib.suppress(OSError):
                path.rmdir()
    return Containment(marks)


def _name_of(marks: dict[str, str]) -> str:
    """The start of the names of a run's cgroups: its id, and a digest of all its marks
    (two scheduler databases on one machine reuse run ids)."""
    digest = hashlib.sha256(repr(sorted(marks.items())).encode()).hexdigest()[:8]
    return f"cronfleet-run-{marks.get('SCHEDULER_RUN_ID', 'x')}-{digest}-"


def kill_lost(marks: dict[str, str]) -> int:
    """For a run declared lost (its pool process died with it): kill what is left in its
    cgroups on this machine (a process that escaped its marks too) and remove them; how
    many processes were killed."""
    if (base := cgroup_base()) is None:
        return 0
    killed = 0
    for path in base.glob(f"{_name_of(marks)}*"):
        with contextlib.suppress(OSError):
            killed += CgroupContainment(marks, path).kill()
    return killed


def mode() -> str:
    """``cgroup`` or ``marker``: what a run on this worker gets (said at start)."""
    probe = for_run({"SCHEDULER_RUN_ID": "probe"})
    probe.kill()
    return probe.mode
