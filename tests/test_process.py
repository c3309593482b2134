"""The child-process runner: output, the tail cap, timeouts and cancels, nothing left behind;
each with no setup of the child (a vfork), with its setup by Python (preexec_fn) and by
the launcher (spawn.c)."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from workers.executors import containment, spawn
from workers.executors.containment import Containment
from workers.executors.process import Limits, OutputBuffer, run_process

Start = Callable[[], dict[str, Any]]


@pytest.fixture(params=["plain", "python", "launcher", "python-cgroup", "launcher-cgroup"])
def start(request) -> Start:
    """How a child is started: run_process's arguments, new for each run (a setup holds a
    run's marks, and with -cgroup a cgroup of its own)."""
    cgroup, launcher = request.param.endswith("cgroup"), request.param.startswith("launcher")
    if cgroup and containment.mode() != "cgroup":
        pytest.skip("no cgroup v2 for runs here")
    if launcher and not spawn.launcher_path().exists():
        pytest.skip("no launcher: make install builds it")

    def arguments() -> dict[str, Any]:
        if request.param == "plain":
            return {}
        marks = {"SCHEDULER_RUN_ID": f"test-{uuid.uuid4().hex}"}
        how: dict[str, Any] = {
            "containment": containment.for_run(marks) if cgroup else Containment(marks)
        }
        return {**how, "launcher": str(spawn.launcher_path())} if launcher else how

    return arguments


def run(
    command: str,
    timeout: float | None = None,
    heartbeat=lambda out: True,
    limit=1 << 16,
    limits: Limits | None = None,
    start: Start = dict,
):
    how = start()
    marks = how["containment"].marks if "containment" in how else {}
    return run_process(
        ["/bin/sh", "-c", command],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **marks},
        cwd=None,
        timeout=timeout,
        output_limit=limit,
        kill_grace=1,
        flush_every=0.1,
        heartbeat=heartbeat,
        limits=limits,
        **how,
    )


def sleepers(seconds: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]


def test_it_captures_output_and_the_exit_code(start):
    result = run("echo out; echo err >&2; exit 3", start=start)
    assert (result.exit_code, result.output, result.timed_out, result.cancelled) == (
        3,
        "out\nerr\n",
        False,
        False,
    )


def test_it_keeps_the_head_and_the_tail_and_says_how_much_was_cut():
    result = run("seq 1 2000", limit=100)
    assert result.output.startswith("1\n2\n3\n")
    assert "\n[... 8793 bytes cut ...]\n" in result.output
    assert result.output.endswith("1999\n2000\n")
    buffer = OutputBuffer(4)
    buffer.append(b"abcdef")
    assert buffer.text() == "ab\n[... 2 bytes cut ...]\nef"


def test_memory_and_cpu_limits_stop_the_child(start):
    big = run(
        "python3 -c \"x = bytearray(300 * 1024 * 1024); print('allocated')\"",
        timeout=30,
        limits=Limits(memory_mb=100),
        start=start,
    )
    assert big.exit_code != 0 and "MemoryError" in big.output and "allocated" not in big.output
    spin = run("while :; do :; done", timeout=30, limits=Limits(cpu_seconds=1), start=start)
    assert spin.exit_code == -signal.SIGXCPU and not spin.timed_out


def test_a_timeout_kills_the_group_even_children_that_ignore_term(start):
    started = time.monotonic()
    result = run("trap '' TERM; sleep 331 & sleep 332; echo never", timeout=0.5, start=start)
    assert result.timed_out and "never" not in result.output
    assert time.monotonic() - started < 5
    assert sleepers("331") == [] and sleepers("332") == []


def test_the_heartbeat_sees_live_output_and_can_cancel(start):
    seen: list[str] = []

    def heartbeat(output: str) -> bool:
        seen.append(output)
        return "ready" not in output

    result = run("echo ready; sleep 333", heartbeat=heartbeat, start=start)
    assert result.cancelled and result.output == "ready\n"
    assert seen[-1] == "ready\n"
    assert sleepers("333") == []


def test_background_processes_do_not_outlive_the_job(start):
    result = run("sleep 334 & echo started", start=start)
    assert result.exit_code == 0
    assert sleepers("334") == []


def test_a_program_that_cannot_start_leaves_no_cgroup_behind():
    """Python's setup (no launcher) raises from Popen when the program is missing: the
    run's cgroup made for it is removed all the same."""
    if containment.mode() != "cgroup":
        pytest.skip("no cgroup v2 for runs here")
    held = containment.for_run({"SCHEDULER_RUN_ID": f"test-{uuid.uuid4().hex}"})
    assert held.cgroup is not None and held.cgroup.exists()
    with pytest.raises(FileNotFoundError):
        run_process(["/nonexistent/program"], env={}, cwd=None, timeout=5, output_limit=1024,
                    kill_grace=1, flush_every=1, heartbeat=lambda out: True,
                    containment=held)  # fmt: skip
    assert not held.cgroup.exists()
