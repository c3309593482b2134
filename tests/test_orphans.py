"""Killing what a dead worker left running: only the lost run's own processes."""

from __future__ import annotations

import os
import subprocess

from scheduler_app import identity
from scheduler_app.models import Run
from tests.helpers import make_job, wait_for
from workers import orphans
from workers.executors.child import child_env


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


def test_a_job_cannot_name_another_run_in_its_environment(owner):
    """Its processes are found by these variables: a job's own env must not set them."""
    forged = {"SCHEDULER_JOB_ID": "999998", "SCHEDULER_RUN_ID": "999999",
              "SCHEDULER_SCHEDULED_FOR": "2000-01-01T00:00:00+00:00"}  # fmt: skip
    job = make_job(owner, env=forged)
    run = Run.objects.create(job=job, trigger="manual", scheduled_for=job.created_at)
    env = child_env(run, identity.worker())
    assert {name: env[name] for name in forged} == run.identity_env() != forged
