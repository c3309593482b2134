"""Beat's bounded tick, in process against the real (private) Redis and database: due
entries go in batches with the lock extended between them, and a lock lost to a slow
tick is told apart from a Redis that lost its data.

The scheduler here is a Celery app of its own (its own RedBeat prefix and queue, in a
Redis database of its own), so the stack's beat and worker, when running, neither see
nor take what it sends; and what the stack's beat sends for the jobs these tests commit
(it reads the same database) does not reach the queue these tests read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery
from django.conf import settings
from redbeat.schedulers import acquire_distributed_beat_lock

from scheduler_app import redbeat
from scheduler_app.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
PREFIX = "beat-tick-test:"
QUEUE = "tick-test-queue"
HOURLY = {"type": "interval", "every": 1, "unit": "hours"}


# Another database of the test Redis than the stack's (the last part of the URL's path).
TICK_REDIS_URL = urlsplit(settings.REDIS_URL)._replace(path="/7").geturl()


@pytest.fixture
def redis_client() -> redis.Redis:
    """This file's Redis database (conftest's own fixture, overridden)."""
    return redis.Redis.from_url(TICK_REDIS_URL, decode_responses=True)


@pytest.fixture
def beat_app(redis_client) -> Iterator[Celery]:
    app = Celery("beat-tick-test", broker=TICK_REDIS_URL)
    app.conf.update(
        redbeat_redis_url=TICK_REDIS_URL, redbeat_key_prefix=PREFIX, redbeat_lock_timeout=30,
        redbeat_redis_options={}, beat_schedule={},
        broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    )  # fmt: skip
    yield app
    for key in [*redis_client.scan_iter(PREFIX + "*"), *redis_client.scan_iter(QUEUE + "*")]:
        redis_client.delete(key)


def due_jobs(owner, count: int) -> list[int]:
    """``count`` hourly jobs whose first fire time was a minute ago (bulk: no entry saved)."""
    start = datetime.now(UTC) - timedelta(hours=1, minutes=1)
    jobs = Job.objects.bulk_create(
        Job(
            owner=owner,
            name=f"due-{i}",
            payload={"command": "true"},
            schedule=HOURLY,
            schedule_start=start,
            queue=QUEUE,
        )
        for i in range(count)
    )
    return [job.id for job in jobs]


def start_beat(app: Celery) -> redbeat.JobScheduler:
    scheduler = redbeat.JobScheduler(app=app)
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    return scheduler


def sent_job_ids(redis_client) -> list[int]:
    """The job ids of the fire_job messages waiting in the test queue (any priority)."""
    ids = []
    for key in redis_client.scan_iter(QUEUE + "*"):
        for raw in redis_client.lrange(key, 0, -1):
            args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
            ids.append(args[0])
    return sorted(ids)


def test_a_tick_with_more_due_than_a_batch_extends_the_lock_between_batches(
    owner, beat_app, redis_client, monkeypatch
):
    monkeypatch.setattr(redbeat, "FIRE_BATCH", 10)
    ids = due_jobs(owner, 35)
    scheduler = start_beat(beat_app)
    sent_at_extension: list[int] = []
    extend = scheduler.lock.extend

    def spy(*args):  # type: ignore[no-untyped-def]
        sent_at_extension.append(len(sent_job_ids(redis_client)))
        return extend(*args)

    monkeypatch.setattr(scheduler.lock, "extend", spy)

    wait = scheduler.tick()  # rebuilds the entries (one step: 35 jobs), then fires

    assert sent_job_ids(redis_client) == ids  # each due job sent once
    # The lock extended at the tick's start, and after each batch of 10.
    assert sent_at_extension == [0, 10, 20, 30, 35]
    assert wait > 0  # nothing due now: it sleeps until the next entry
    scheduler.tick()
    assert sent_job_ids(redis_client) == ids


def test_a_lock_lost_to_a_slow_tick_is_taken_back_without_a_rebuild(
    owner, beat_app, redis_client, caplog
):
    due_jobs(owner, 3)
    scheduler = start_beat(beat_app)
    scheduler.tick()
    assert scheduler._rebuild is None
    redis_client.delete(beat_app.redbeat_conf.lock_key)  # it expired during a slow tick

    assert scheduler.tick() == 0.0

    assert "a slow tick" in caplog.text
    assert scheduler.lock.owned()
    assert scheduler._rebuild is None  # the entries in Redis are still good: no rebuild
    assert redis_client.zcard(beat_app.redbeat_conf.schedule_key) == 3 + 1  # and backend_cleanup


def test_a_redis_that_lost_its_data_is_rebuilt(owner, beat_app, redis_client, caplog):
    ids = due_jobs(owner, 3)
    scheduler = start_beat(beat_app)
    scheduler.tick()
    for key in redis_client.scan_iter(PREFIX + "*"):  # a flush, of this beat's keys
        redis_client.delete(key)

    assert scheduler.tick() == 0.0

    assert "Redis lost its data" in caplog.text
    assert scheduler.lock.owned()
    assert scheduler._rebuild is not None  # rebuilt in the next ticks
    scheduler.tick()
    entries = redis_client.zrange(beat_app.redbeat_conf.schedule_key, 0, -1)
    assert {PREFIX + f"job:{job_id}" for job_id in ids} <= set(entries)
    # Sent again from the database's last fire time: no worker recorded the first send
    # here (in the stack the run's unique (job, scheduled time) makes it one run).
    assert sent_job_ids(redis_client) == sorted(ids * 2)


def test_a_missing_generation_under_a_held_lock_starts_a_rebuild(owner, beat_app, redis_client):
    due_jobs(owner, 2)
    scheduler = start_beat(beat_app)
    scheduler.tick()
    redis_client.delete(redbeat.generation_key(beat_app))

    assert scheduler.tick() == 0.0

    assert scheduler._rebuild is not None


def test_a_rebuild_removes_stale_entries_a_page_of_the_schedule_at_a_time(
    owner, beat_app, redis_client
):
    ids = due_jobs(owner, 10)
    paused = ids[:4]
    Job.objects.filter(id__in=paused).update(enabled=False)  # their entries not removed
    # And entries whose jobs are no more: past 128 members a sorted set is scanned in pages.
    stale = [*paused, *(max(ids) + 1000 + i for i in range(150))]
    redbeat.redis_for(beat_app)  # binds its RedBeat configuration
    schedule_key = beat_app.redbeat_conf.schedule_key
    for job_id in stale:
        redis_client.hset(PREFIX + f"job:{job_id}", "definition", "{}")
    redis_client.zadd(schedule_key, {PREFIX + f"job:{job_id}": 1 for job_id in stale})

    rebuild = redbeat.Rebuild(beat_app, batch=20)
    steps = 1
    while not rebuild.step():
        steps += 1

    assert (rebuild.saved, rebuild.removed) == (6, 154)
    assert steps > 2  # one for the 10 jobs and a first page; 160 entries, ~20 a page
    left = set(redis_client.zrange(schedule_key, 0, -1))
    assert left == {PREFIX + f"job:{job_id}" for job_id in ids[4:]}
    assert not any(redis_client.exists(PREFIX + f"job:{job_id}") for job_id in stale)


def send_then(scheduler: redbeat.JobScheduler, monkeypatch, save) -> None:  # type: ignore[no-untyped-def]
    """Make ``save()`` run right after beat sends a due entry: between its read of the
    batch and its write-back, where an API save can land."""
    send = scheduler._send

    def send_and_save(*args):  # type: ignore[no-untyped-def]
        send(*args)
        save()

    monkeypatch.setattr(scheduler, "_send", send_and_save)


def test_a_job_deleted_while_beat_sends_it_is_not_put_back(owner, beat_app, redis_client,
                                                            monkeypatch):  # fmt: skip
    [job_id] = due_jobs(owner, 1)
    scheduler = start_beat(beat_app)
    send_then(scheduler, monkeypatch, lambda: redbeat.remove_entry(job_id, app=beat_app))

    scheduler.tick()

    key = PREFIX + f"job:{job_id}"
    assert sent_job_ids(redis_client) == [job_id]
    assert not redis_client.exists(key)  # no meta-only entry left behind
    assert redis_client.zscore(beat_app.redbeat_conf.schedule_key, key) is None


def test_a_schedule_edited_while_beat_sends_it_keeps_the_edit(owner, beat_app, redis_client,
                                                               monkeypatch):  # fmt: skip
    [job_id] = due_jobs(owner, 1)  # hourly, due a minute ago
    every_2_minutes = {"type": "interval", "every": 2, "unit": "minutes"}

    def edit() -> None:
        Job.objects.filter(id=job_id).update(schedule=every_2_minutes)
        redbeat.save_entry(Job.objects.get(id=job_id), app=beat_app)

    scheduler = start_beat(beat_app)
    send_then(scheduler, monkeypatch, edit)
    before = datetime.now(UTC)

    scheduler.tick()

    key = PREFIX + f"job:{job_id}"
    entry = redbeat.JobEntry.from_key(key, app=beat_app)
    assert entry.schedule.params["spec"] == every_2_minutes  # the edit stays
    assert entry.last_run_at >= before  # and the fire sent is recorded on it
    # Scored by the edited schedule (within 2 minutes), not the hourly one beat read.
    score = redis_client.zscore(beat_app.redbeat_conf.schedule_key, key)
    assert score == entry.schedule.fire_time(entry.last_run_at).timestamp()
    assert score <= (entry.last_run_at + timedelta(minutes=2)).timestamp()
    scheduler.tick()
    assert sent_job_ids(redis_client) == [job_id]  # not sent again
