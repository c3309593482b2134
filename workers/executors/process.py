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
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Returns False to stop the child (the run was cancelled).
Heartbeat = Callable[[str], bool]


@dataclass(frozen=True)
class Limits:
    """Resource limits set on the child before it runs (and so on all it starts)."""

    memory_mb: int | None = None
    cpu_seconds: int | None = None

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
    """
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
    if on_start is not None:
        on_start(proc.pid)
    tail = OutputBuffer(output_limit)
    reader = threading.Thread(target=_pump, args=(proc, tail), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = cancelled = False
    try:
        while True:
            wait = (
                flush_every if deadline is None else min(flush_every, deadline - time.monotonic())
            )
            try:
                proc.wait(timeout=max(wait, 0))
                break
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
            elif not heartbeat(tail.text()):
                cancelled = True
            if timed_out or cancelled:
                _terminate_group(proc, kill_grace)
                break
    finally:
        _kill_group(proc.pid)
        proc.wait()
        reader.join(timeout=5)
    return ProcessResult(proc.returncode, tail.text(), timed_out, cancelled)


def _pump(proc: subprocess.Popen[bytes], tail: OutputBuffer) -> None:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while chunk := os.read(fd, 65536):
        tail.append(chunk)
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
