"""Nothing stuck, on the real stack: a run whose worker died is lost and retried, a
lost message is sent again, a worker told to stop leaves no run running (heartbeat
timeout 5 s, reaper every 2 s, requeue after 10 s: see the ``stack`` fixture)."""

from __future__ import annotations

import signal
import time

import pytest
from django.utils import timezone

from scheduler_app import runs
from scheduler_app.models import Job, Run
from tests.helpers import manual_job, processes_running, run_now, wait_for, wait_runs

pytestmark = pytest.mark.stack

# Attempt 1 leaves a process behind and kills its own pool process; attempt 2 is fine.
SELF_KILLING = (
    'if [ "$SCHEDULER_ATTEMPT" = 1 ]; then sleep 347 & kill -9 $PPID; wait; fi; echo done'
)


def test_a_job_that_kills_its_own_pool_process_is_lost_retried_and_cleaned_up(live, api):
    job = manual_job(api, "self-killing", SELF_KILLING, max_retries=1)
    first = run_now(api, job)
    wait_for(lambda: processes_running("sleep", "347"))

    lost = wait_runs(job["id"], 1, timeout=30, id=first, status=Run.Status.LOST)[0]
    retry = wait_runs(job["id"], 1, timeout=30, attempt=2, status=Run.Status.SUCCEEDED)[0]

    assert lost.error.startswith("lost: no heartbeat since ") and lost.finished_at
    assert (retry.output, retry.trigger) == ("done\n", "retry")
    # The node, still alive, kills what the dead pool process left running.
    wait_for(lambda: not processes_running("sleep", "347"), timeout=15)


def test_a_queued_run_whose_message_was_lost_still_runs_once(live, api):
    job = manual_job(api, "lost-message", "echo once")
    # Queued but never sent, as when Redis restarts without persistence under it.
    run = runs.create(job=Job.objects.get(id=job["id"]), trigger="manual",
                      scheduled_for=timezone.now())  # fmt: skip

    (done,) = wait_runs(job["id"], 1, timeout=40, status=Run.Status.SUCCEEDED)

    assert (done.id, done.output) == (run.id, "once\n")
    assert Run.objects.filter(job_id=job["id"]).count() == 1


def test_a_warm_shutdown_lets_short_jobs_end_and_records_long_ones_lost(live, api):
    live.start_worker(name="deploy", node="w7", queues="deploy", SCHEDULER_SHUTDOWN_GRACE="3")
    live.wait_workers(2)
    short = manual_job(api, "short", "sleep 1; echo ok", queue="deploy")
    long = manual_job(api, "long", "sleep 361", queue="deploy", max_retries=0)
    short_run, long_run = run_now(api, short), run_now(api, long)
    wait_runs(short["id"], 1, id=short_run, status=Run.Status.RUNNING)
    wait_runs(long["id"], 1, id=long_run, status=Run.Status.RUNNING)

    started = time.monotonic()
    worker = live.procs.pop("deploy")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    took = time.monotonic() - started

    assert Run.objects.get(id=short_run).status == Run.Status.SUCCEEDED
    lost = Run.objects.get(id=long_run)
    assert lost.status == Run.Status.LOST and lost.finished_at
    assert "shut down; the run was still going after 3 s" in lost.error
    assert 3 <= took < 20
    assert not processes_running("sleep", "361")
