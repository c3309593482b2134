"""The one place that talks to RedBeat: job entries in Redis, and the beat scheduler.

Redis is an index of the Job table. Each scheduled job has one RedBeat entry,
``<prefix>job:<id>``, whose schedule is a :class:`JobSchedule`: the job's
canonical schedule evaluated by :mod:`scheduler_app.schedules`, the same code the
preview and ``next_run_at`` use. :func:`reconcile` rebuilds every entry from the
database; beat runs it when it starts, and ``manage.py sync_schedules`` on demand.

When an entry is due, :class:`JobScheduler` sends ``workers.fire_job(job_id,
scheduled_for)`` to the job's queue; ``scheduled_for`` is the fire time that
became due, so the worker creates the run for exactly that time, once.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.schedules import BaseSchedule, schedstate
from django.db import transaction
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.celery import app as celery_app
from scheduler_app import schedules
from scheduler_app.dispatch import FIRE_JOB, broker_priority
from scheduler_app.models import Job

logger = logging.getLogger(__name__)

_SCHEDULE_TYPE = "scheduler_app.JobSchedule"
REDIS_AWAY_RETRY = 2.0  # seconds between beat's looks at a Redis that does not answer


class JobSchedule(BaseSchedule):
    """A job's fire times as beat sees them, from the plain values of Job.beat_params()."""

    def __init__(self, params: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.params = params
        self._schedule = schedules.from_beat_params(params)

    def fire_time(self, last_run_at: datetime) -> datetime | None:
        """The first fire time after the last one beat sent."""
        return self._schedule.next_after(last_run_at.astimezone(UTC))

    def remaining_estimate(self, last_run_at: datetime) -> timedelta | None:  # type: ignore[override]
        fire = self.fire_time(last_run_at)
        return None if fire is None else fire - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        fire = self.fire_time(last_run_at)
        if fire is None:
            return schedstate(False, None)
        if fire <= now:
            following = self._schedule.next_after(now)
            return schedstate(True, (following - now).total_seconds() if following else None)
        return schedstate(False, (fire - now).total_seconds())

    def __repr__(self) -> str:
        return f"<JobSchedule {self.params['spec']} {self.params['timezone']}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobSchedule):
            return NotImplemented
        return self.params == other.params

    def __hash__(self) -> int:
        return hash(json.dumps(self.params, sort_keys=True))


class JobScheduleEncoder(RedBeatJSONEncoder):
    def default(self, obj: Any) -> Any:
        if isinstance(obj, JobSchedule):
            return {"__type__": _SCHEDULE_TYPE, "params": obj.params}
        return super().default(obj)


class JobScheduleDecoder(RedBeatJSONDecoder):
    def dict_to_object(self, d: dict[str, Any]) -> Any:
        if d.get("__type__") == _SCHEDULE_TYPE:
            return JobSchedule(d["params"])
        return super().dict_to_object(d)


class JobEntry(RedBeatSchedulerEntry):
    """A RedBeat entry that can store a JobSchedule, and whose last run only moves forward."""

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        return json.loads(definition, cls=JobScheduleDecoder)

    @property
    def due_at(self) -> datetime | None:
        """The next fire time itself: the entry's score in RedBeat's sorted set.

        RedBeat adds a "remaining from now" to the last run, which is early by the
        time since that run (harmless, but the score should say when it is due)."""
        if self.last_run_at is None or not isinstance(self.schedule, JobSchedule):
            return super().due_at
        return self.schedule.fire_time(self.last_run_at)

    def save(self) -> JobEntry:
        """Write the entry; its stored ``last_run_at`` only ever moves forward.

        Beat writes ``last_run_at`` after each fire. Reading it and writing ours is
        one optimistic transaction (WATCH on the entry's key, retried if beat wrote
        in between), so a save racing beat cannot set it back and fire a slot twice.
        """
        definition = json.dumps(
            {
                "name": self.name, "task": self.task, "args": self.args, "kwargs": self.kwargs,
                "options": self.options, "schedule": self.schedule, "enabled": self.enabled,
            },
            cls=JobScheduleEncoder,
        )  # fmt: skip

        def write(pipe: Pipeline) -> None:
            stored = self._stored_last_run_at(pipe.hget(self.key, "meta"))
            if stored is not None and stored > self.last_run_at:
                self.last_run_at = stored
            meta = {"last_run_at": self.last_run_at, "total_run_count": self.total_run_count}
            pipe.multi()
            pipe.hset(self.key, "definition", definition)
            pipe.hset(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})

        get_redis(self.app).transaction(write, self.key)
        return self

    @staticmethod
    def _stored_last_run_at(meta: str | None) -> datetime | None:
        if not meta:
            return None
        return json.loads(meta, cls=RedBeatJSONDecoder).get("last_run_at")


class JobScheduler(RedBeatScheduler):
    """RedBeat, plus: rebuild job entries at start, and tell each fire its scheduled time."""

    Entry = JobEntry
    _redis_away = False  # set while Redis does not answer; repaired when it does

    def setup_schedule(self) -> None:
        super().setup_schedule()
        saved, removed = reconcile(self.app)
        logger.info("beat: reconciled schedules: %d job entries saved, %d removed", saved, removed)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One beat tick; survives Redis going away, and losing its data.

        While Redis does not answer, beat waits for it instead of dying. When it
        answers again, beat keeps (or takes back, waiting as a standby beat does) its
        lock and rebuilds the job entries from the database, so jobs saved meanwhile
        are scheduled at once. A Redis that forgot everything also drops the lock:
        the same repair follows.
        """
        try:
            if self._redis_away:
                self._recover()
            return super().tick(*args, **kwargs)
        except LockNotOwnedError:
            logger.warning(
                "beat: lost the RedBeat lock (Redis restarted or flushed?); re-acquiring"
            )
            self._recover()
            return 0.0
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if not self._redis_away:
                logger.warning("beat: Redis is not answering (%s); waiting for it", exc)
            self._redis_away = True
            return REDIS_AWAY_RETRY

    def _recover(self) -> None:
        if not self.lock.owned():
            self.lock.acquire()
        # All that beat installs as it starts: a Redis that forgot everything forgot the
        # static entries too (the sweeps that resend lost messages), not only the jobs'.
        self.setup_schedule()
        self._redis_away = False
        logger.warning("beat: Redis answers; lock held, schedule rebuilt")

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any):  # type: ignore[no-untyped-def]
        if isinstance(entry.schedule, JobSchedule):
            last = entry.last_run_at or self.app.now()
            fire = entry.schedule.fire_time(last)
            if fire is not None:
                entry.kwargs = {
                    **(entry.kwargs or {}),
                    "scheduled_for": fire.isoformat(),
                    "sent_at": self.app.now().isoformat(),
                }
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)


def entry_name(job_id: int) -> str:
    return f"job:{job_id}"


def save_entry(job: Any, app: Celery | None = None) -> None:
    app = app or celery_app
    entry = JobEntry(
        name=entry_name(job.id),
        task=FIRE_JOB,
        schedule=JobSchedule(job.beat_params()),
        args=[job.id],
        options={"queue": job.queue, "priority": broker_priority(job.priority)},
        app=app,
    )
    entry.last_run_at = job.schedule_reference
    entry.save()


def remove_entry(job_id: int, app: Celery | None = None) -> None:
    app = app or celery_app
    JobEntry(name=entry_name(job_id), app=app).delete()


def last_sent(job_id: int, app: Celery | None = None) -> datetime | None:
    """When beat last sent the job's fire (its entry's last run), None if never or unknown."""
    app = app or celery_app
    get_redis(app)  # binds app.redbeat_conf
    try:
        entry = JobEntry.from_key(app.redbeat_conf.key_prefix + entry_name(job_id), app=app)
    except KeyError:
        return None
    return entry.last_run_at


def first_due(app: Celery | None = None) -> tuple[int, tuple[str, datetime] | None]:
    """How many entries beat's schedule holds, and the one due first (its key and due
    time; None when none is due at all). Beat moves an entry's score to its next fire
    as it sends it, so a first due time far in the past means no beat is sending."""
    app = app or celery_app
    client = get_redis(app)
    key = app.redbeat_conf.schedule_key
    with client.pipeline() as pipe:
        pipe.zcard(key)
        pipe.zrangebyscore(key, 0, "+inf", start=0, num=1, withscores=True)
        count, first = pipe.execute()
    if not first:
        return count, None
    name, score = first[0]
    return count, (name, datetime.fromtimestamp(score, UTC))


def sync_job(job_id: int) -> None:
    """Make the job's RedBeat entry match its row: saved while scheduled, gone otherwise."""
    job = Job.objects.filter(id=job_id).first()
    if job is not None and job.is_scheduled:
        save_entry(job)
    else:
        remove_entry(job_id)


def sync_after_commit(job_id: int) -> None:
    """Sync the job's entry once the transaction commits, so Redis never holds a
    schedule the database rolled back. If Redis is down then, the change is still
    safe in the database; beat rebuilds the entries when Redis answers again, and at
    its start (``manage.py sync_schedules`` does it on demand)."""

    def sync() -> None:
        try:
            sync_job(job_id)
        except Exception:
            logger.exception(
                "could not update the schedule of job %s in Redis; it is saved in the "
                "database and `manage.py sync_schedules` will restore it",
                job_id,
            )

    transaction.on_commit(sync)


def reconcile(app: Celery | None = None) -> tuple[int, int]:
    """Rebuild every job entry from the database; remove entries of jobs not scheduled.

    Returns (entries saved, entries removed).
    """
    app = app or celery_app
    get_redis(app)  # binds app.redbeat_conf
    prefix = app.redbeat_conf.key_prefix + "job:"
    saved = 0
    scheduled_ids: set[int] = set()
    for job in Job.objects.filter(enabled=True, completed_at__isnull=True).iterator():
        if job.is_scheduled:
            save_entry(job, app)
            scheduled_ids.add(job.id)
            saved += 1
    client = get_redis(app)
    stale = [
        key
        for key in client.zrange(app.redbeat_conf.schedule_key, 0, -1)
        if key.startswith(prefix) and int(key[len(prefix) :]) not in scheduled_ids
    ]
    for key in stale:
        remove_entry(int(key[len(prefix) :]), app)
    return saved, len(stale)
