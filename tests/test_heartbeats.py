"""Nothing stuck, on the real stack: a run whose worker died is lost and retried, a
lost message is sent again, a worker told to stop leaves no run running (heartbeat
timeout 5 s, reaper every 2 s, requeue after 10 s: see the ``stack`` fixture)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scheduler_app import runs
from scheduler_app.models import Job, Run
from tests.helpers import manual_job, wait_runs

pytestmark = pytest.mark.stack


def test_a_queued_run_whose_message_was_lost_still_runs_once(live, api):
    job = manual_job(api, "lost-message", "echo once")
    # Queued but never sent, as when Redis restarts without persistence under it.
    run = runs.create(job=Job.objects.get(id=job["id"]), trigger="manual",
                      scheduled_for=timezone.now())  # fmt: skip

    (done,) = wait_runs(job["id"], 1, timeout=40, status=Run.Status.SUCCEEDED)

    assert (done.id, done.output) == (run.id, "once\n")
    assert Run.objects.filter(job_id=job["id"]).count() == 1
