"""Run user code in a child process group, with a timeout, an output cap and live output.

User code never runs inside the worker: the child gets a session (and so a
process group) of its own, so a timeout or a cancel signals the whole tree, and
everything left in the group when the child exits is killed too, so a job leaves
no process behind.
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
) -> ProcessResult:
    """Run ``argv`` to its end; ``heartbeat`` sees the output so far every ``flush_every`` s.

    ``on_start`` is told the child's pid, which is also its process group's id.

    One thread waits on both the output pipe and the child's exit (a pidfd), so a short
    job ends as soon as its process does: no reader thread, no polling. Without limits
    to set there is no Python code to run in the child, which lets the fork be a vfork
    (a large worker is not copied to start ``true``)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=limits.apply if limits else None,  # only setrlimit: safe after fork
    )
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
