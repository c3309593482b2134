"""Run user code in a child process group, with a timeout, an output cap and live output.

User code never runs inside the worker: the child gets a session (and so a
process group) of its own, so a timeout or a cancel signals the whole tree. When
the child exits, its group is killed, and so is every other process of the run
that its containment finds (workers/containment.py: a cgroup, or the run's marks),
so a job leaves no process behind, not even one that made a session of its own.

Before it runs, the child (after fork, in this order): joins its containment, takes
its limits, drops to its identity (groups, gid, uid) and only then enters its
working directory, so that directory is one the identity itself may enter. With a
launcher (spawn.c, cronfleet-spawn) it does all that in C: the launcher is the group
leader and, with a cgroup, the parent of the program, which it starts in the cgroup.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Returns False to stop the child (the run was cancelled).
Heartbeat = Callable[[str], bool]
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Limits:
    """Resource limits set on the child before it runs (and so on all it starts)."""

    memory_mb: int | None = None
    cpu_seconds: int | None = None

    def __bool__(self) -> bool:
        return bool(self.memory_mb or self.cpu_seconds)

    def apply(self) -> None:
        if self.memory_mb:
            size = self.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if self.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 1))


class Containment(Protocol):
    cgroup: Path | None  # the run's cgroup, where the launcher starts the program

    def join(self) -> None: ...
    def kill(self) -> int: ...


@dataclass(frozen=True)
class Identity:
    """Who the child runs as: set after fork, before the program starts."""

    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True)
class ChildSetup:
    """What the child does between fork and exec; only system calls, safe after fork."""

    limits: Limits | None = None
    identity: Identity | None = None
    cwd: str | None = None
    containment: Containment | None = None

    def __call__(self) -> None:
        if self.containment is not None:
            self.containment.join()
        if self.limits is not None:
            self.limits.apply()
        if self.identity is not None:
            os.setgroups(list(self.identity.groups))
            os.setgid(self.identity.gid)
            os.setuid(self.identity.uid)
        if self.cwd is not None:
            os.chdir(self.cwd)

    def launcher_argv(self, launcher: str, argv: Sequence[str]) -> list[str]:
        """``argv`` started by the launcher (spawn.c), which does this setup itself."""
        args = [launcher]
        if self.containment is not None and self.containment.cgroup is not None:
            args += ["-c", str(self.containment.cgroup)]
        if self.limits is not None and self.limits.memory_mb:
            args += ["-m", str(self.limits.memory_mb)]
        if self.limits is not None and self.limits.cpu_seconds:
            args += ["-t", str(self.limits.cpu_seconds)]
        if self.identity is not None:
            groups = ",".join(map(str, self.identity.groups))
            args += ["-u", str(self.identity.uid), "-g", str(self.identity.gid), "-G", groups]
        if self.cwd is not None:
            args += ["-d", self.cwd]
        return [*args, "--", *argv]


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None
    output: str
    timed_out: bool
    cancelled: bool


class OutputBuffer:
    """Keeps the first and the last ``limit / 2`` bytes of a stream, and says how much it cut."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self._head = bytearray()
        self._tail = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()

    def append(self, chunk: bytes) -> None:
        with self._lock:
            room = self.half - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            self._tail += chunk
            excess = len(self._tail) - self.half
            if excess > 0:
                del self._tail[:excess]
                self._dropped += excess

    def text(self) -> str:
        with self._lock:
            head, tail, dropped = bytes(self._head), bytes(self._tail), self._dropped
        cut = f"\n[... {dropped} bytes cut ...]\n" if dropped else ""
        return head.decode("utf-8", errors="replace") + cut + tail.decode("utf-8", errors="replace")


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    timeout: float | None,
    output_limit: int,
    kill_grace: float,
    flush_every: float,
    heartbeat: Heartbeat,
    limits: Limits | None = None,
    on_start: Callable[[int], object] | None = None,
    identity: Identity | None = None,
    containment: Containment | None = None,
    launcher: str | None = None,
) -> ProcessResult:
    """Run ``argv`` to its end; ``heartbeat`` sees the output so far every ``flush_every`` s.

    ``on_start`` is told the child's pid, which is also its process group's id.

    One thread waits on both the output pipe and the child's exit (a pidfd), so a short
    job ends as soon as its process does: no reader thread, no polling. With nothing to
    set up in the child (no limits, identity or containment: a worker that runs job code
    as itself) no Python code runs there, which lets the fork be a vfork (a large worker
    is not copied to start ``true``); switching identity in Python rules that out, which
    ``launcher`` (spawn.c: it does the setup itself) avoids."""
    setup = None
    if limits or identity is not None or containment is not None:
        setup = ChildSetup(limits, identity, cwd, containment)
    start_in = cwd if setup is None else None  # else entered as the identity
    if setup is not None and launcher is not None:
        argv, setup = setup.launcher_argv(launcher, argv), None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=start_in,
            start_new_session=True,
            preexec_fn=setup,
        )
    except BaseException:
        if containment is not None:  # nothing started: its cgroup is not left behind
            containment.kill()
        raise
    assert proc.stdout is not None
    if on_start is not None:
        on_start(proc.pid)
    tail = OutputBuffer(output_limit)
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = cancelled = False
    with selectors.DefaultSelector() as watch, _exit_fd(proc.pid) as exited:
        watch.register(proc.stdout, selectors.EVENT_READ)
        watch.register(exited, selectors.EVENT_READ)
        try:
            next_flush = time.monotonic() + flush_every
            while not _pump(watch, proc, tail, until=min(next_flush, deadline or next_flush)):
                if deadline is not None and time.monotonic() >= deadline:
                    timed_out = True
                elif time.monotonic() >= next_flush:
                    cancelled = not heartbeat(tail.text())
                    next_flush = time.monotonic() + flush_every
                if timed_out or cancelled:
                    _terminate_group(proc, kill_grace)
                    break
        finally:
            _kill_group(proc.pid)
            proc.wait()
            if containment is not None:
                containment.kill()  # what left the group (setsid) holds the output open too
            watch.unregister(exited)
            _drain(watch, proc, tail)
    return ProcessResult(proc.returncode, tail.text(), timed_out, cancelled)


@contextlib.contextmanager
def _exit_fd(pid: int) -> Iterator[int]:
    """A file descriptor that becomes readable when the process ``pid`` exits."""
    fd = os.pidfd_open(pid)
    try:
        yield fd
    finally:
        os.close(fd)


def _pump(
    watch: selectors.BaseSelector, proc: subprocess.Popen[bytes], tail: OutputBuffer, until: float
) -> bool:
    """Read output until ``until`` (monotonic); True as soon as the child has exited."""
    assert proc.stdout is not None
    while (left := until - time.monotonic()) > 0:
        for key, _ in watch.select(left):
            if key.fileobj is proc.stdout:
                _read(watch, proc, tail)
            else:
                return True
    return False


def _read(watch: selectors.BaseSelector, proc: subprocess.Popen[bytes], tail: OutputBuffer) -> bool:
    """One chunk of output into ``tail``; False at the end of the output."""
    assert proc.stdout is not None
    if chunk := os.read(proc.stdout.fileno(), 65536):
        tail.append(chunk)
        return True
    watch.unregister(proc.stdout)
    return False


def _drain(
    watch: selectors.BaseSelector, proc: subprocess.Popen[bytes], tail: OutputBuffer
) -> None:
    """The output left in the pipe once the group is gone (waiting at most DRAIN_SECONDS
    for a process that left the group and still holds the pipe)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + DRAIN_SECONDS
    while watch.get_map() and (left := deadline - time.monotonic()) > 0:
        if not watch.select(left) or not _read(watch, proc, tail):
            break
    proc.stdout.close()


def _terminate_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """TERM to the whole group, then KILL to what is still there after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
