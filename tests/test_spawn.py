"""The launcher of job code (workers/executors/spawn.c) with real processes: it ends as its
program did, contains it, limits it, switches its identity before it enters its directory,
and says clearly why a program did not start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from scheduler_app import identity
from scheduler_app.models import Job
from workers import orphans
from workers.executors import containment, sandbox, spawn
from workers.executors.child import describe_exit
from workers.executors.process import ChildSetup, Limits, ProcessResult, run_process

LAUNCHER = str(spawn.launcher_path())
pytestmark = pytest.mark.skipif(not spawn.launcher_path().exists(), reason="make install")
needs_cgroup = pytest.mark.skipif(containment.mode() != "cgroup", reason="no cgroup v2 here")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching identity needs root")


def launch(
    command: str,
    mode: str = "marker",
    cwd: str | None = None,
    limits: Limits | None = None,
    timeout: float | None = 30,
    as_run_as: bool = False,
) -> ProcessResult:
    """``command`` run as a run's is, through the launcher; ``mode`` its containment."""
    marks = {"SCHEDULER_RUN_ID": f"spawn-{uuid.uuid4().hex}"}
    contained = containment.for_run(marks) if mode == "cgroup" else containment.Containment(marks)
    assert contained.mode == mode
    who = sandbox.child_identity(identity.run_as()) if as_run_as else None
    return run_process(
        ["/bin/sh", "-c", command],
        env={"PATH": sandbox.DEFAULT_PATH, **marks},
        cwd=cwd,
        timeout=timeout,
        output_limit=1 << 16,
        kill_grace=1,
        flush_every=0.1,
        heartbeat=lambda output: True,
        limits=limits,
        identity=who,
        containment=contained,
        launcher=LAUNCHER,
    )


def running(argument: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if argument in (p.info["cmdline"] or [])]


MODES = pytest.mark.parametrize("mode", [pytest.param("cgroup", marks=needs_cgroup), "marker"])


@MODES
def test_it_ends_as_its_program_did(mode):
    assert launch("echo out; exit 3", mode).exit_code == 3
    assert launch("kill -KILL $$", mode).exit_code == -signal.SIGKILL
    assert launch("kill -SEGV $$", mode).exit_code == -signal.SIGSEGV
    assert launch("true", mode).exit_code == 0


@needs_cgroup
def test_in_a_cgroup_the_program_gets_the_term_of_a_timeout_and_its_grace():
    result = launch("trap 'echo graceful; exit 0' TERM; sleep 30 & wait", "cgroup", timeout=0.5)
    assert result.timed_out and result.output == "graceful\n"


@needs_cgroup
def test_in_a_cgroup_a_program_that_leaves_the_group_is_killed_at_the_end():
    seconds = str(700 + uuid.uuid4().int % 100)
    result = launch(f"setsid sh -c '(env -i sleep {seconds} &) &'; echo started", "cgroup")
    assert (result.exit_code, result.output) == (0, "started\n")
    assert running(seconds) == []


@needs_cgroup
def test_in_a_cgroup_the_program_is_born_inside_and_the_launcher_stays_out():
    result = launch("cat /proc/self/cgroup; cat /proc/$PPID/cgroup", "cgroup")
    program, launcher = (line for line in result.output.splitlines() if line.startswith("0::"))
    assert "/cronfleet-run-spawn-" in program and "cronfleet-run-" not in launcher


@MODES
def test_memory_and_cpu_limits_apply(mode):
    big = launch(
        "python3 -c \"x = bytearray(300 * 1024 * 1024); print('allocated')\"",
        mode,
        limits=Limits(memory_mb=100),
    )
    assert "MemoryError" in big.output and "allocated" not in big.output
    spin = launch("while :; do :; done", mode, limits=Limits(cpu_seconds=1))
    assert spin.exit_code == -signal.SIGXCPU and not spin.timed_out


@needs_root
@MODES
def test_the_program_runs_as_the_run_as_identity(mode):
    who = identity.run_as()
    result = launch("id -u; id -g; id -G", mode, as_run_as=True)
    uid, gid, groups = result.output.splitlines()
    assert (int(uid), int(gid)) == (who.uid, who.gid) != (0, 0)
    assert {int(g) for g in groups.split()} == {who.gid, *who.groups}


@needs_root
@MODES
def test_the_directory_is_entered_as_the_identity_and_a_closed_one_fails_clearly(
    mode, tmp_path: Path
):
    closed = tmp_path / "root-only"
    closed.mkdir(mode=0o700)
    result = launch("echo never", mode, cwd=str(closed), as_run_as=True)
    assert result.exit_code == 125 and "never" not in result.output
    assert result.output.startswith(f"cronfleet-spawn: cannot enter the working directory {closed}")
    assert "Permission denied" in result.output
    assert describe_exit(result.exit_code, Job(), result.output).startswith(
        f"the job's program did not start: cannot enter the working directory {closed} as uid "
        f"{identity.run_as().uid}: Permission denied"
    )


@MODES
def test_a_program_that_cannot_start_says_why(mode):
    marks = {"SCHEDULER_RUN_ID": f"spawn-{uuid.uuid4().hex}"}
    missing = subprocess.run(
        [LAUNCHER, "-c", "/nonexistent", "--", "true"] if mode == "cgroup" else
        [LAUNCHER, "--", "/nonexistent/program"],
        env=marks, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode in (125, 127) and missing.stderr.startswith("cronfleet-spawn: ")
    assert describe_exit(missing.returncode, Job(), missing.stderr).startswith(
        "the job's program did not start: cannot "
    )
    assert describe_exit(127, Job(), "sh: 1: nope: not found\n") == "exited with code 127."


@MODES
def test_the_marks_reach_the_launcher_and_the_program_so_orphans_are_found(mode):
    marks = {"SCHEDULER_RUN_ID": f"spawn-{uuid.uuid4().hex}"}
    contained = containment.for_run(marks) if mode == "cgroup" else containment.Containment(marks)
    argv = ChildSetup(containment=contained).launcher_argv(LAUNCHER, ["sleep", "600"])
    proc = subprocess.Popen(argv, env=marks, start_new_session=True)
    try:
        # The launcher and its program in a cgroup; the program alone (exec'd) without.
        assert proc.pid in found(marks, 2 if mode == "cgroup" else 1)
        assert orphans.kill_run_processes(marks) == 1  # one group: the launcher's
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        contained.kill()


def found(marks: dict[str, str], count: int) -> list[int]:
    """The processes carrying ``marks``, once there are ``count`` of them (10 s at most)."""
    deadline = time.monotonic() + 10
    while len(pids := orphans.processes_of_run(marks)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def test_without_the_launcher_the_worker_falls_back_to_python_and_says_so(
    settings, monkeypatch, tmp_path: Path
):
    assert spawn.launcher() == LAUNCHER and "cronfleet-spawn launcher" in spawn.mode()
    settings.SCHEDULER_SPAWN = "python"
    assert spawn.launcher() is None and "SCHEDULER_SPAWN=python" in spawn.mode()
    settings.SCHEDULER_SPAWN = "auto"
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # a virtualenv without it
    assert spawn.launcher() is None
    assert f"there is no {tmp_path}/bin/cronfleet-spawn (`make install` builds it" in spawn.mode()
