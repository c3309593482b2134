"""Killing what a dead worker left running: only the lost run's own process group."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import wait_for
from workers import orphans


def start_group(run_id: int) -> subprocess.Popen[bytes]:
    """A job-like process group: a shell in its own session, with a child of its own."""
    env = {**os.environ, "SCHEDULER_RUN_ID": str(run_id)}
    return subprocess.Popen(["/bin/sh", "-c", "sleep 353 & wait"], env=env,
                            start_new_session=True)  # fmt: skip


def test_the_group_of_the_run_is_killed_and_no_other():
    group = start_group(run_id=7)
    try:
        wait_for(lambda: len(orphans.group_members(group.pid)) == 2, timeout=10)
        assert orphans.belongs_to_run(group.pid, 7) and not orphans.belongs_to_run(group.pid, 70)

        assert not orphans.kill_group_of_run(group.pid, run_id=8)  # a reused pid: left alone
        assert group.poll() is None

        assert orphans.kill_group_of_run(group.pid, run_id=7)
        assert group.wait(timeout=10) == -9
        wait_for(lambda: not orphans.group_members(group.pid), timeout=10)
    finally:
        group.kill()
        group.wait()


def test_a_group_that_is_gone_is_nothing_to_kill():
    group = start_group(run_id=9)
    os.killpg(group.pid, 9)
    group.wait()
    wait_for(lambda: not orphans.group_members(group.pid), timeout=10)
    assert not orphans.kill_group_of_run(group.pid, run_id=9)
