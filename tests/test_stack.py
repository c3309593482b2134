"""End to end: jobs made through the API, fired by real beat, run by a real worker.

Nothing here is mocked: a private Redis, ``celery beat`` with the RedBeat
scheduler and ``celery worker`` run as separate processes on the test database.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from scheduler_app.models import Job, Run
from tests.helpers import create_job, manual_job, processes_running, run_now, wait_for, wait_runs

pytestmark = pytest.mark.stack


def test_it_runs_an_interval_job_on_its_schedule(live, api):
    tick = {"command": "echo tick $SCHEDULER_ATTEMPT"}
    job = create_job(api, name="tick", payload=tick, schedule="every 2 seconds")

    first, second = wait_runs(job["id"], 2, status=Run.Status.SUCCEEDED)[:2]

    assert (first.output, first.exit_code, first.trigger, first.attempt) == (
        "tick 1\n",
        0,
        "schedule",
        1,
    )
    assert first.worker.startswith("w1@")
    # On the 2 s grid; a busy machine may coalesce a fire time, never shift the grid.
    gap = second.scheduled_for - first.scheduled_for
    assert gap > timedelta(0) and gap % timedelta(seconds=2) == timedelta(0)
    assert first.started_at >= first.scheduled_for
    assert first.duration is not None and first.duration >= 0
    job_row = Job.objects.get(id=job["id"])
    assert job_row.total_runs >= 2
    assert job_row.last_status == Run.Status.SUCCEEDED
    assert job_row.next_run_at > second.scheduled_for
    response = api.get(f"/api/v1/jobs/{job['id']}/runs/")
    assert response.status_code == 200
    assert (
        response.data["results"][0]["scheduled_for"]
        >= response.data["results"][-1]["scheduled_for"]
    )


def test_it_retries_a_failed_run_as_new_attempts_then_completes_a_once_job(live, api):
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    job = create_job(
        api,
        name="flaky",
        payload={"command": "echo attempt $SCHEDULER_ATTEMPT; exit 1"},
        schedule={"type": "once", "at": at},
        max_retries=2,
        retry_delay=1,
    )

    runs = wait_runs(job["id"], 3, status=Run.Status.FAILED)

    assert [(r.attempt, r.trigger, r.exit_code) for r in runs] == [
        (1, "schedule", 1),
        (2, "retry", 1),
        (3, "retry", 1),
    ]
    assert [r.output for r in runs] == ["attempt 1\n", "attempt 2\n", "attempt 3\n"]
    assert len({r.scheduled_for for r in runs}) == 1
    assert runs[0].scheduled_for == datetime.fromisoformat(at)
    for previous, retry in itertools.pairwise(runs):
        assert (retry.started_at - previous.finished_at).total_seconds() >= 0.9
    job_row = wait_for(lambda: Job.objects.filter(id=job["id"], completed_at__isnull=False).first())
    assert (job_row.status, job_row.failed_runs, job_row.total_runs) == ("completed", 3, 3)
    assert job_row.next_run_at is None


def test_a_timeout_kills_the_whole_process_group(live, api):
    job = manual_job(api, "slow", "sleep 317 & sleep 318; echo never", timeout=2)
    response = api.post(f"/api/v1/jobs/{job['id']}/run/")
    assert response.status_code == 202
    assert response.data["trigger"] == "manual"

    (run,) = wait_runs(job["id"], 1, timeout=20, status=Run.Status.TIMED_OUT)

    assert 2 <= run.duration < 10
    assert "never" not in run.output
    assert "timed out after 2 s" in run.error
    assert processes_running("sleep", "317") == []
    assert processes_running("sleep", "318") == []


def test_cancel_stops_a_running_run_on_its_worker(live, api):
    job = manual_job(api, "long", "echo started; sleep 319")
    run_id = run_now(api, job)
    wait_runs(job["id"], 1, status=Run.Status.RUNNING)
    wait_for(lambda: processes_running("sleep", "319"))

    response = api.post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 200
    cancelled = Run.objects.get(id=run_id)
    assert (cancelled.status, cancelled.finished_at is not None) == (Run.Status.CANCELLED, True)
    # The node kills the process at its next output flush and reports how it ended.
    run = wait_for(
        lambda: Run.objects.filter(id=run_id, duration__isnull=False).first(), timeout=15
    )
    assert run.status == Run.Status.CANCELLED
    assert run.output == "started\n"
    assert processes_running("sleep", "319") == []
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 409


def test_pausing_stops_runs_and_resuming_restarts_them(live, api):
    job = create_job(api, name="pulse", payload={"command": "true"}, schedule="every 1 seconds")
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED)

    assert api.post(f"/api/v1/jobs/{job['id']}/pause/").data["status"] == "paused"
    paused_at = datetime.now(UTC)
    # Absence of runs can only be seen over time: watch for three intervals.
    wait_for(lambda: datetime.now(UTC) > paused_at + timedelta(seconds=3), timeout=5)
    # No fire time after the pause (one sent just before it may still be processed).
    assert not Run.objects.filter(job_id=job["id"], scheduled_for__gt=paused_at)

    assert api.post(f"/api/v1/jobs/{job['id']}/resume/").data["status"] == "active"
    resumed_at = datetime.now(UTC)
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED, scheduled_for__gt=resumed_at)


def test_a_flushed_redis_and_a_restarted_beat_lose_no_schedule(live, api, redis_client):
    job = create_job(api, name="survivor", payload={"command": "true"}, schedule="every 2 seconds")
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED)

    live.stop("beat")
    redis_client.flushall()
    live.start_beat()
    restarted_at = datetime.now(UTC)

    wait_runs(job["id"], 2, status=Run.Status.SUCCEEDED, scheduled_for__gt=restarted_at)


def test_beat_rebuilds_the_schedule_when_redis_is_flushed_under_it(live, api, redis_client):
    job = create_job(api, name="steady", payload={"command": "true"}, schedule="every 2 seconds")
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED)

    redis_client.flushall()
    flushed_at = datetime.now(UTC)

    wait_runs(job["id"], 2, status=Run.Status.SUCCEEDED, scheduled_for__gt=flushed_at)
    assert "re-acquiring" in live.log("beat")

    def sweeps_back() -> bool:
        """beat's static entries (the sweeps) are back in Redis"""
        return all(redis_client.exists(f"redbeat:{name}") for name in settings.CELERY_BEAT_SCHEDULE)

    wait_for(sweeps_back, timeout=10)


def test_beat_fires_a_seconds_cron_and_a_once_job_at_the_previewed_seconds(live, api):
    preview = api.post(
        "/api/v1/schedules/preview/", {"schedule": "*/3 * * * * *", "count": 20}, format="json"
    ).data["next_runs"]
    at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    cron = create_job(api, name="3s", payload={"command": "true"}, schedule="*/3 * * * * *")
    once = create_job(
        api,
        name="once",
        payload={"command": "true"},
        schedule={"type": "once", "at": at.isoformat()},
    )
    assert once["next_run_at"] == at.isoformat().replace("+00:00", "Z")

    runs = wait_runs(cron["id"], 3, status=Run.Status.SUCCEEDED)
    (once_run,) = wait_runs(once["id"], 1, status=Run.Status.SUCCEEDED)

    fired = [r.scheduled_for.isoformat().replace("+00:00", "Z") for r in runs]
    assert set(fired) <= set(preview)
    gaps = [b.scheduled_for - a.scheduled_for for a, b in itertools.pairwise(runs)]
    assert all(gap > timedelta(0) and gap % timedelta(seconds=3) == timedelta(0) for gap in gaps)
    assert once_run.scheduled_for == at
    for run in [*runs, once_run]:
        # Never early; late only by the start-up latency of a (possibly busy) machine.
        assert timedelta(0) <= run.started_at - run.scheduled_for < timedelta(seconds=5)


def test_fire_times_missed_while_beat_was_down_are_recorded_not_lost(live, api):
    job = create_job(api, name="gap", payload={"command": "true"}, schedule="every 1 seconds",
                     misfire_grace=1, catchup="skip")  # fmt: skip
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED)
    live.stop("beat")
    stopped_at = datetime.now(UTC)
    wait_for(lambda: datetime.now(UTC) > stopped_at + timedelta(seconds=4), timeout=6)
    live.start_beat()

    missed = wait_runs(job["id"], 3, status=Run.Status.MISSED)
    assert all(
        r.error == "missed: the scheduler was not running at this time (catchup=skip)"
        for r in missed
    )
    wait_runs(job["id"], 1, status=Run.Status.SUCCEEDED, scheduled_for__gt=missed[-1].scheduled_for)
