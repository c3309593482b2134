"""Run state changes, called directly: once-only creation, claims, retries, completion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from scheduler_app import firing, retries, runs, services
from scheduler_app.models import Job, Run
from tests.helpers import make_job

AT = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def job(owner) -> Job:
    return make_job(
        owner,
        name="j",
        schedule={"type": "interval", "every": 1, "unit": "minutes"},
        max_retries=2,
        retry_delay=10,
        retry_backoff=True,
    )


def fire(job: Job, at: datetime) -> Run | None:
    """Fire ``job`` for ``at`` as beat would, on time; the run to start, if any."""
    runs = firing.fire_due(job.id, at, sent_at=at)
    return runs[0] if runs else None


def test_a_fire_time_makes_one_run_however_often_it_is_sent(job):
    first = fire(job, AT)
    again = fire(job, AT)
    assert first is not None and again is None
    assert Run.objects.filter(job=job).count() == 1
    job.refresh_from_db()
    assert job.last_fired_for == AT
    # The interval's grid starts when the job was made, so the next time is within a minute.
    assert AT < job.next_run_at <= AT + timedelta(minutes=1)
    assert job.next_run_at == job.get_schedule().next_after(AT)


def test_the_schedule_only_moves_forward(job):
    fire(job, AT + timedelta(minutes=1))
    fire(job, AT)  # a late message for an earlier time
    job.refresh_from_db()
    assert job.last_fired_for == AT + timedelta(minutes=1)


def test_only_one_worker_claims_a_run(job):
    run = fire(job, AT)
    assert services.claim_run(run.id, "w1@a").worker == "w1@a"
    assert services.claim_run(run.id, "w2@b") is None


def test_forbid_skips_a_run_that_finds_another_running(job):
    running = fire(job, AT)
    services.claim_run(running.id, "w1@a")
    second = fire(job, AT + timedelta(minutes=1))
    assert services.claim_run(second.id, "w2@b") is None
    second.refresh_from_db()
    assert (second.status, second.error) == (
        "skipped",
        f"skipped: run {running.id} is still running",
    )


def test_allow_runs_up_to_max_concurrent(job):
    job.concurrency_policy, job.max_concurrent = "allow", 2
    job.save()
    runs = [fire(job, AT + timedelta(minutes=n)) for n in range(3)]
    assert [bool(services.claim_run(r.id, "w1@a")) for r in runs] == [True, True, False]
    runs[2].refresh_from_db()
    assert runs[2].error == "skipped: 2 runs are running, max_concurrent is 2"


def test_replace_cancels_the_running_one(job):
    job.concurrency_policy = "replace"
    job.save()
    old, new = fire(job, AT), fire(job, AT + timedelta(minutes=1))
    services.claim_run(old.id, "w1@a")
    assert services.claim_run(new.id, "w2@b") is not None
    old.refresh_from_db()
    assert (old.status, old.error) == ("cancelled", f"replaced by run {new.id}")


def test_queue_one_keeps_one_waiting_and_starts_it_when_the_running_one_ends(
    job, django_capture_on_commit_callbacks
):
    job.concurrency_policy = "queue_one"
    job.save()
    first, second, third = (fire(job, AT + timedelta(minutes=n)) for n in range(3))
    services.claim_run(first.id, "w1@a")
    assert services.claim_run(second.id, "w1@a") is None
    assert services.claim_run(third.id, "w1@a") is None
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, second.error) == ("waiting", f"waiting: run {first.id} is still running")
    assert third.status == "skipped"
    with django_capture_on_commit_callbacks() as callbacks:
        services.finish_run(first, Run.Status.SUCCEEDED, exit_code=0)
    assert len(callbacks) == 1  # the waiting run is sent to a worker
    assert services.claim_run(second.id, "w1@a") is not None


def test_a_failure_queues_a_retry_with_backoff(job, django_capture_on_commit_callbacks):
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    with django_capture_on_commit_callbacks() as callbacks:
        services.finish_run(run, Run.Status.FAILED, exit_code=1, error="exited with code 1.")
    retry = Run.objects.get(job=job, attempt=2)
    assert (retry.trigger, retry.status, retry.scheduled_for) == ("retry", "queued", AT)
    assert len(callbacks) == 1
    assert [retries.delay(job, n, spread=0) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
    assert retries.delay(job, 3, spread=1) == 32.0  # jitter takes up to 20 % off
    assert retries.delay(job, 30, spread=0) == retries.MAX_RETRY_DELAY  # capped
    assert all(8 <= retries.delay(job, 1) <= 10 for _ in range(50))
    job.refresh_from_db()
    assert (job.total_runs, job.failed_runs, job.last_status) == (1, 1, "failed")


def test_no_retry_after_the_last_attempt_or_a_success(job):
    run = Run.objects.create(job=job, trigger="retry", scheduled_for=AT, attempt=3)
    services.claim_run(run.id, "w1@a")
    services.finish_run(run, Run.Status.FAILED, exit_code=1)
    ok = fire(job, AT + timedelta(minutes=1))
    assert ok is not None
    services.claim_run(ok.id, "w1@a")
    services.finish_run(ok, Run.Status.SUCCEEDED, exit_code=0)
    assert Run.objects.filter(job=job).count() == 2


def test_a_run_cancelled_while_running_stays_cancelled(job):
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    assert services.cancel_run(run)
    finished = services.finish_run(run, Run.Status.FAILED, exit_code=-15, output="partial")
    assert (finished.status, finished.output) == ("cancelled", "partial")
    assert finished.duration is not None and finished.error == "cancelled by user"
    assert not services.cancel_run(run)
    # The node's report is recorded once; a second one changes nothing.
    assert services.finish_run(run, Run.Status.FAILED, output="late").output == "partial"


def test_a_once_job_completes_after_its_run(owner):
    job = make_job(
        owner,
        name="once",
        schedule={"type": "once", "at": AT.isoformat()},
    )
    assert job.next_run_at == AT
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    services.finish_run(run, Run.Status.SUCCEEDED, exit_code=0)
    job.refresh_from_db()
    assert (job.status, job.next_run_at, job.is_scheduled) == ("completed", None, False)


def test_a_restarted_worker_marks_its_running_runs_lost(job):
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    (lost,) = services.lose_runs_of("w1@a", "worker w1@a restarted")
    assert services.lose_runs_of("w1@a", "again") == []
    run.refresh_from_db()
    assert (lost.id, run.status, run.error) == (run.id, "lost", "lost: worker w1@a restarted")
    assert Run.objects.get(job=job, attempt=2).trigger == "retry"


def test_changing_the_schedule_restarts_its_clock_but_a_pause_does_not(job):
    start = job.schedule_start
    job.description = "no timing change"
    job.save()
    assert job.schedule_start == start
    job.enabled = False
    job.save()
    job.enabled = True
    job.save()
    assert job.schedule_start == start
    assert job.paused_at <= job.resumed_at
    job.schedule = {"type": "interval", "every": 2, "unit": "minutes"}
    job.save()
    assert job.schedule_start > start


def test_runs_whose_heartbeat_stopped_are_lost_whatever_their_node_says(job):
    now = timezone.now()
    silent, beating, parent = (fire(job, AT + n * timedelta(minutes=1)) for n in range(3))
    services.claim_run(silent.id, "w1@alive")
    Run.objects.filter(id=silent.id).update(heartbeat_at=now - timedelta(seconds=31), pid=4242)
    Run.objects.filter(id=beating.id).update(status="running", started_at=now, heartbeat_at=now)
    old = now - timedelta(minutes=5)
    Run.objects.filter(id=parent.id).update(status="running", started_at=old, heartbeat_at=old)
    Run.objects.create(job=job, trigger="schedule", scheduled_for=AT, parent=parent, node="w2")

    assert services.reap_silent(timeout=30) == []  # first found silent: only suspected
    (lost,) = services.reap_silent(timeout=30)

    assert (lost.id, lost.worker, lost.pid) == (silent.id, "w1@alive", 4242)
    silent.refresh_from_db()
    assert silent.status == "lost" and silent.error.startswith("lost: no heartbeat since ")
    assert silent.finished_at is not None and silent.duration is not None
    assert Run.objects.get(id=beating.id).status == "running"
    assert Run.objects.get(id=parent.id).status == "running"  # judged by its children
    assert Run.objects.get(job=job, scheduled_for=AT, attempt=2).trigger == "retry"
    assert services.reap_silent(timeout=30) == []  # lost once


def test_a_run_that_beats_again_after_a_sweep_found_it_silent_is_not_lost(job):
    """The database away for everyone: no run could beat. The first sweep after it only
    suspects them; they beat again within a second; the next sweep loses none."""
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    Run.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert services.reap_silent(timeout=30) == []
    assert runs.save_output(run.id, "still here")
    assert services.reap_silent(timeout=30) == []
    assert Run.objects.get(id=run.id).status == "running"


def test_a_run_whose_message_was_lost_is_sent_again_once(job, django_capture_on_commit_callbacks):
    now = timezone.now()
    lost_message = fire(job, AT)
    delayed = runs.create(job=job, trigger="retry", scheduled_for=AT, attempt=2,
                          due_at=now + timedelta(minutes=10))  # fmt: skip
    Run.objects.filter(id=lost_message.id).update(due_at=now - timedelta(minutes=6))

    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.requeue_stale(after=300) == 1
        assert services.requeue_stale(after=300) == 0  # sent again now: not stale any more

    assert len(sent) == 1
    assert Run.objects.get(id=lost_message.id).due_at > now
    assert Run.objects.get(id=delayed.id).due_at > now  # its countdown is not a lost message
    assert services.claim_run(lost_message.id, "w1@a") is not None
    assert services.claim_run(lost_message.id, "w2@b") is None  # the late original


def test_a_retry_is_due_after_its_countdown(job):
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    before = timezone.now()
    services.finish_run(run, Run.Status.FAILED, exit_code=1)
    retry = Run.objects.get(job=job, attempt=2)
    assert before + timedelta(seconds=8) <= retry.due_at  # retry_delay 10, less jitter


def test_an_edit_from_a_stale_row_keeps_the_runs_counted_meanwhile(job):
    stale = Job.objects.get(id=job.id)
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    services.finish_run(run, Run.Status.FAILED, exit_code=1)
    stale.description = "edited"
    stale.save()
    services.set_enabled(stale, enabled=False)
    job.refresh_from_db()
    assert (job.description, job.enabled) == ("edited", False)
    assert (job.total_runs, job.failed_runs, job.last_status, job.last_fired_for) == (
        1, 1, "failed", AT,
    )  # fmt: skip


def test_a_waiting_run_can_be_cancelled_and_is_then_not_released(job):
    job.concurrency_policy = "queue_one"
    job.save()
    first, second = fire(job, AT), fire(job, AT + timedelta(minutes=1))
    services.claim_run(first.id, "w1@a")
    services.claim_run(second.id, "w1@a")
    assert services.cancel_run(second)
    services.finish_run(first, Run.Status.SUCCEEDED, exit_code=0)
    second.refresh_from_db()
    assert (second.status, second.finished_at is not None) == ("cancelled", True)


def test_a_finish_reported_twice_is_counted_once(job):
    run = fire(job, AT)
    services.claim_run(run.id, "w1@a")
    services.finish_run(run, Run.Status.SUCCEEDED, exit_code=0)
    again = services.finish_run(run, Run.Status.FAILED, exit_code=1)
    job.refresh_from_db()
    assert (again.status, job.total_runs, job.failed_runs) == ("succeeded", 1, 0)
