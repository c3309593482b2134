"""What due fire times become: runs, missed times by catchup, skips by policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler_app import firing
from scheduler_app.models import Calendar, Job, Run
from tests.helpers import make_job

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)
HOURLY = {"type": "hourly", "minute": 0}


@pytest.fixture
def every_minute(owner) -> Job:
    cron = {"type": "cron", "expression": "* * * * *"}
    return make_job(owner, name="m", schedule=cron, start_at=T0, misfire_grace=30)


def statuses(job: Job) -> list[tuple[str, str]]:
    return [
        (r.scheduled_for.strftime("%H:%M"), r.status)
        for r in Run.objects.filter(job=job).order_by("scheduled_for")
    ]


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        (
            "skip",
            [("09:00", "missed"), ("09:01", "missed"), ("09:02", "missed"), ("09:03", "queued")],
        ),
        (  # once: the missed times fold into one run, here the on-time one at 09:03
            "once",
            [("09:00", "missed"), ("09:01", "missed"), ("09:02", "missed"), ("09:03", "queued")],
        ),
        (
            "all",
            [("09:00", "queued"), ("09:01", "queued"), ("09:02", "queued"), ("09:03", "queued")],
        ),
    ],
)
def test_catchup_decides_what_runs_after_an_outage(every_minute, catchup, expected):
    every_minute.catchup = catchup
    every_minute.save()
    # Beat was down from before 09:00; it comes back at 09:03:10 and sends the first due time.
    firing.fire_due(every_minute.id, T0, sent_at=T0 + 3 * MINUTE + timedelta(seconds=10))
    assert statuses(every_minute) == expected
    missed = Run.objects.filter(job=every_minute, status="missed").first()
    if missed:
        assert (
            missed.error
            == f"missed: the scheduler was not running at this time (catchup={catchup})"
        )


def test_once_runs_the_latest_missed_time_when_none_is_on_time(every_minute):
    firing.fire_due(every_minute.id, T0, sent_at=T0 + 2 * MINUTE + timedelta(seconds=45))
    assert statuses(every_minute) == [("09:00", "missed"), ("09:01", "missed"), ("09:02", "queued")]


def test_missed_while_paused_says_so(every_minute):
    Job.objects.filter(id=every_minute.id).update(paused_at=T0 - MINUTE, resumed_at=T0 + 5 * MINUTE)
    firing.fire_due(every_minute.id, T0, sent_at=T0 + 5 * MINUTE)
    first = Run.objects.filter(job=every_minute).order_by("scheduled_for").first()
    assert first.error == "missed: the job was paused at this time (catchup=once)"


def test_many_missed_times_are_recorded_up_to_a_bound_and_counted(every_minute):
    every_minute.catchup = "skip"
    every_minute.save()
    firing.fire_due(every_minute.id, T0, sent_at=T0 + timedelta(hours=3))
    missed = Run.objects.filter(job=every_minute, status="missed").order_by("scheduled_for")
    assert missed.count() == firing.MISSED_RECORD_LIMIT
    assert missed.last().result == {
        "also_missed": 180 - firing.MISSED_RECORD_LIMIT,
        "until": (T0 + timedelta(minutes=179)).isoformat(),
    }


def test_a_fire_time_outside_the_window_is_a_skipped_run(owner):
    monday_late_morning = {"days_of_week": [0], "start": "10:00", "end": "12:00"}
    job = make_job(owner, name="w", schedule=HOURLY, start_at=T0, window=monday_late_morning)
    assert firing.fire_due(job.id, T0, sent_at=T0) == []
    run = Run.objects.get(job=job)
    assert (run.status, run.error) == (
        "skipped",
        "skipped: outside the allowed window (10:00-12:00 on Mon in UTC)",
    )
    assert run.finished_at is not None
    assert (
        len(firing.fire_due(job.id, T0 + timedelta(hours=1), sent_at=T0 + timedelta(hours=1))) == 1
    )


def test_a_calendar_shift_queues_the_run_for_the_next_allowed_day(
    owner, django_capture_on_commit_callbacks
):
    calendar = Calendar.objects.create(owner=owner, name="h", dates=["2030-01-07"])
    job = make_job(
        owner,
        name="s",
        schedule={"type": "daily", "time": "09:00"},
        start_at=T0,
        calendar=calendar,
        calendar_policy="shift",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert firing.fire_due(job.id, T0, sent_at=T0) == []
    run = Run.objects.get(job=job)
    assert (run.status, run.scheduled_for) == ("queued", T0 + timedelta(days=1))
    assert len(callbacks) == 1  # sent to the queue with a countdown to that time
    # The regular fire of the next day is the same instant: one run, not two.
    assert firing.fire_due(job.id, T0 + timedelta(days=1), sent_at=T0 + timedelta(days=1)) == []
    assert Run.objects.filter(job=job).count() == 1


def test_a_job_past_its_end_completes_when_its_last_fire_is_skipped(owner):
    sunday_late_morning = {"days_of_week": [6], "start": "10:00", "end": "12:00"}
    end = T0 + timedelta(minutes=30)
    job = make_job(owner, name="e", schedule=HOURLY, start_at=T0, end_at=end,
                   window=sunday_late_morning)  # fmt: skip
    firing.fire_due(job.id, T0, sent_at=T0)
    job.refresh_from_db()
    assert job.status == "completed"
