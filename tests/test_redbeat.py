"""The RedBeat side, against the real (private) Redis: entries, encoding, reconcile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.query import QuerySet
from redbeat.decoder import RedBeatJSONEncoder

from config.celery import app
from scheduler_app import redbeat
from scheduler_app.models import Job
from scheduler_app.redbeat import JobEntry, JobSchedule
from tests import helpers

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "redbeat:job:{}"
EVERY_10_SECONDS = {"type": "interval", "every": 10, "unit": "seconds"}


@pytest.fixture(autouse=True)
def empty_redis(redis_client):
    redis_client.flushdb()
    yield
    redis_client.flushdb()


def make_job(owner, **fields) -> Job:
    return helpers.make_job(owner, **{"schedule": EVERY_10_SECONDS, **fields})


def load(job_id: int) -> JobEntry:
    return JobEntry.from_key(KEY.format(job_id), app=app)


def test_saving_a_job_writes_its_entry_after_commit(owner, redis_client):
    job = make_job(owner, queue="reports", priority=7)
    entry = load(job.id)
    assert entry.task == "workers.fire_job"
    assert entry.args == [job.id]
    assert entry.options == {"queue": "reports", "priority": 2}  # 9 - 7: Redis serves 0 first
    assert entry.schedule == JobSchedule(job.beat_params())
    assert entry.last_run_at == job.schedule_start
    assert redis_client.zscore("redbeat::schedule", KEY.format(job.id)) == pytest.approx(
        (job.schedule_start + timedelta(seconds=10)).timestamp(), abs=1
    )


def test_pausing_completing_or_deleting_removes_the_entry(owner, redis_client):
    job = make_job(owner)
    job.enabled = False
    job.save()
    assert not redis_client.exists(KEY.format(job.id))
    job.enabled = True
    job.save()
    assert redis_client.exists(KEY.format(job.id))
    job.delete()
    assert not redis_client.exists(KEY.format(job.id))
    manual = make_job(owner, name="m", schedule={"type": "manual"})
    assert not redis_client.exists(KEY.format(manual.id))


def test_the_schedule_survives_a_round_trip_through_json(owner):
    job = make_job(
        owner, schedule={"type": "cron", "expression": "0 9 * * 1-5"}, timezone="Europe/Paris"
    )
    raw = json.dumps({"schedule": load(job.id).schedule}, cls=redbeat.JobScheduleEncoder)
    decoded = json.loads(raw, cls=redbeat.JobScheduleDecoder)["schedule"]
    after = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # a Friday
    assert decoded.fire_time(after) == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_is_due_tells_beat_the_fire_time_and_the_wait(owner):
    job = make_job(owner)
    schedule = load(job.id).schedule
    start = job.schedule_start
    schedule.nowfun = lambda: start + timedelta(seconds=4)
    assert schedule.is_due(start) == (False, pytest.approx(6))
    schedule.nowfun = lambda: start + timedelta(seconds=10.5)
    assert schedule.is_due(start) == (True, pytest.approx(9.5))


def test_reconcile_rebuilds_a_flushed_redis_from_the_database(owner, redis_client):
    active = make_job(owner, name="a")
    fired_for = active.schedule_start + timedelta(seconds=30)
    Job.objects.filter(id=active.id).update(last_fired_for=fired_for)
    paused = make_job(owner, name="p", enabled=False)
    redis_client.flushdb()
    redis_client.hset(KEY.format(paused.id), "definition", "{}")
    redis_client.zadd("redbeat::schedule", {KEY.format(paused.id): 1})

    assert redbeat.reconcile() == (1, 1)

    assert load(active.id).last_run_at == fired_for
    assert not redis_client.exists(KEY.format(paused.id))


def test_an_entry_never_moves_back_in_time(owner):
    job = make_job(owner)
    later = datetime.now(UTC) + timedelta(hours=1)
    entry = load(job.id)
    entry.last_run_at = later
    entry.save()
    redbeat.save_entry(Job.objects.get(id=job.id))
    assert load(job.id).last_run_at == later


def test_a_save_racing_beat_keeps_the_time_beat_wrote(owner, redis_client, monkeypatch):
    """Beat writes last_run_at between our read and our write: the script notices, the save
    is done again, and the newer time stays."""
    job = make_job(owner)
    beat_wrote = datetime.now(UTC) + timedelta(hours=1)
    meta = json.dumps({"last_run_at": beat_wrote, "total_run_count": 1}, cls=RedBeatJSONEncoder)
    read = JobEntry._stored_last_run_at
    reads = []

    def read_while_beat_writes(stored: str | None) -> datetime | None:
        reads.append(stored)
        if len(reads) == 1:  # beat fires between our read and our write
            redis_client.hset(KEY.format(job.id), "meta", meta)
        return read(stored)

    monkeypatch.setattr(JobEntry, "_stored_last_run_at", staticmethod(read_while_beat_writes))
    redbeat.save_entry(Job.objects.get(id=job.id))

    # At least one save done again; the session's real beat, sharing this Redis, may touch
    # the entry too and cost another (seen once on PostgreSQL: three reads).
    assert len(reads) >= 2
    assert load(job.id).last_run_at == beat_wrote


def after_next_job_read(monkeypatch, then) -> None:  # type: ignore[no-untyped-def]
    """Run ``then()`` once, right after the next read of job rows: between a writer's
    read of the database and its write to Redis, where a save in another process can
    land (its own reads do not run it again)."""
    fetch = QuerySet._fetch_all
    pending = [then]

    def fetch_then(queryset: QuerySet) -> None:
        fetch(queryset)
        if queryset.model is Job and pending:
            pending.pop()()

    monkeypatch.setattr(QuerySet, "_fetch_all", fetch_then)


def resume(job_id: int) -> None:
    """Resume the job as the API does: a save, its entry written after the commit."""
    job = Job.objects.get(id=job_id)
    job.enabled = True
    job.save()


def test_a_job_resumed_while_stale_entries_are_removed_keeps_its_entry(
    owner, redis_client, monkeypatch
):
    """The rebuild passed the job while it was paused (its entry left behind by a lost
    sync); it is resumed after the stale scan looked it up, before the removal."""
    job = make_job(owner)
    Job.objects.filter(id=job.id).update(enabled=False)  # paused; the entry not removed
    after_next_job_read(monkeypatch, lambda: resume(job.id))

    removed = redbeat.remove_stale(app, [KEY.format(job.id)], scheduled=set())

    assert removed == 0
    assert load(job.id).schedule == JobSchedule(Job.objects.get(id=job.id).beat_params())
    assert redis_client.zscore("redbeat::schedule", KEY.format(job.id)) is not None


def test_a_job_created_while_stale_entries_are_removed_keeps_its_entry(
    owner, redis_client, monkeypatch
):
    """A job whose row did not exist when the stale scan looked it up."""
    first = make_job(owner, name="first")
    key = KEY.format(first.id + 1)  # the next job's, already in a page of the schedule
    redis_client.zadd("redbeat::schedule", {key: 1})
    created = []
    after_next_job_read(monkeypatch, lambda: created.append(make_job(owner, name="next")))

    removed = redbeat.remove_stale(app, [key], scheduled={first.id})

    assert [job.id for job in created] == [first.id + 1]
    assert removed == 0
    assert load(first.id + 1).args == [first.id + 1]


def test_a_pause_synced_after_a_later_resume_leaves_the_entry(owner, redis_client, monkeypatch):
    """Two saves' syncs cross: the pause's reads the paused row, the resume's saves the
    entry, then the pause's removal comes: the entry of the later row stays."""
    job = make_job(owner)
    Job.objects.filter(id=job.id).update(enabled=False)
    after_next_job_read(monkeypatch, lambda: resume(job.id))

    redbeat.sync_job(job.id)  # the pause's sync

    assert redis_client.exists(KEY.format(job.id))
    assert redis_client.zscore("redbeat::schedule", KEY.format(job.id)) is not None


def test_a_rebuild_holding_an_older_row_keeps_a_later_edit(owner, redis_client, monkeypatch):
    """The rebuild reads the job's row, an edit is saved (entry written), then the rebuild
    reads the stored meta and writes: the edit stays."""
    job = make_job(owner)
    every_minute = {"type": "interval", "every": 1, "unit": "minutes"}

    def edit() -> None:
        edited = Job.objects.get(id=job.id)
        edited.schedule = every_minute
        edited.save()

    after_next_job_read(monkeypatch, edit)

    redbeat.reconcile()

    assert load(job.id).schedule.params["spec"] == every_minute
    saved = Job.objects.get(id=job.id)
    assert saved.revision == job.revision + 1
    assert load(job.id).schedule == JobSchedule(saved.beat_params())


def test_each_save_counts_the_revision_up_in_the_database(owner, redis_client):
    job = make_job(owner)
    first = Job.objects.get(id=job.id)
    second = Job.objects.get(id=job.id)
    first.save()
    second.save()  # from the same row read: still a later revision
    assert Job.objects.get(id=job.id).revision == job.revision + 2
    assert second.revision == job.revision + 2
    assert redis_client.hget(KEY.format(job.id), "revision") == str(job.revision + 2)
