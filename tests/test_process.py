"""The child-process runner: output, the tail cap, timeouts and cancels, nothing left behind."""

from __future__ import annotations

import signal
import time

import psutil

from workers.executors.process import Limits, OutputBuffer, run_process


def run(
    command: str,
    timeout: float | None = None,
    heartbeat=lambda out: True,
    limit=1 << 16,
    limits: Limits | None = None,
):
    return run_process(
        ["/bin/sh", "-c", command],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        cwd=None,
        timeout=timeout,
        output_limit=limit,
        kill_grace=1,
        flush_every=0.1,
        heartbeat=heartbeat,
        limits=limits,
    )


def sleepers(seconds: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]


def test_it_captures_output_and_the_exit_code():
    result = run("echo out; echo err >&2; exit 3")
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


def test_memory_and_cpu_limits_stop_the_child():
    big = run(
        "python3 -c \"x = bytearray(300 * 1024 * 1024); print('allocated')\"",
        timeout=30,
        limits=Limits(memory_mb=100),
    )
    assert big.exit_code != 0 and "MemoryError" in big.output and "allocated" not in big.output
    spin = run("while :; do :; done", timeout=30, limits=Limits(cpu_seconds=1))
    assert spin.exit_code == -signal.SIGXCPU and not spin.timed_out


def test_a_timeout_kills_the_group_even_children_that_ignore_term():
    started = time.monotonic()
    result = run("trap '' TERM; sleep 331 & sleep 332; echo never", timeout=0.5)
    assert result.timed_out and "never" not in result.output
    assert time.monotonic() - started < 5
    assert sleepers("331") == [] and sleepers("332") == []


def test_the_heartbeat_sees_live_output_and_can_cancel():
    seen: list[str] = []

    def heartbeat(output: str) -> bool:
        seen.append(output)
        return "ready" not in output

    result = run("echo ready; sleep 333", heartbeat=heartbeat)
    assert result.cancelled and result.output == "ready\n"
    assert seen[-1] == "ready\n"
    assert sleepers("333") == []


def test_background_processes_do_not_outlive_the_job():
    result = run("sleep 334 & echo started")
    assert result.exit_code == 0
    assert sleepers("334") == []
