"""Killing what a dead worker left running: only the lost run's own processes."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import wait_for
from workers import orphans


def marks(run_id: int, job_id: int = 3) -> dict[str, str]:
    return {"SCHEDULER_JOB_ID": str(job_id), "SCHEDULER_RUN_ID": str(run_id),
            "SCHEDULER_SCHEDULED_FOR": "2030-01-01T09:00:00+00:00"}  # fmt: skip


def start_job(run_marks: dict[str, str]) -> subprocess.Popen[bytes]:
    """A job-like process group: a shell in its own session, with a child of its own."""
    env = {**os.environ, **run_marks}
    return subprocess.Popen(["/bin/sh", "-c", "sleep 353 & wait"], env=env,
                            start_new_session=True)  # fmt: skip


def test_the_processes_of_the_run_are_killed_and_no_other():
    # The same run id in another scheduler's database: another job, not ours.
    mine, other = start_job(marks(7)), start_job(marks(7, job_id=4))
    try:
        wait_for(lambda: len(orphans.processes_of_run(marks(7))) == 2, timeout=10)

        assert orphans.kill_run_processes(marks(7)) == 1

        assert mine.wait(timeout=10) == -9
        wait_for(lambda: not orphans.processes_of_run(marks(7)), timeout=10)
        assert other.poll() is None and len(orphans.processes_of_run(marks(7, 4))) == 2
    finally:
        for job in (mine, other):
            if job.poll() is None:
                os.killpg(job.pid, 9)
            job.wait()


def test_a_run_with_no_process_left_is_nothing_to_kill():
    assert orphans.kill_run_processes(marks(123456789)) == 0
