"""The one place that talks to RedBeat: job entries in Redis, and the beat scheduler.

Redis is an index of the Job table. Each scheduled job has one RedBeat entry,
``<prefix>job:<id>``, whose schedule is a :class:`JobSchedule`: the job's
canonical schedule evaluated by :mod:`scheduler_app.schedules`, the same code the
preview and ``next_run_at`` use. :func:`reconcile` rebuilds every entry from the
database; beat does it when it starts, and ``manage.py sync_schedules`` on demand.

RedBeat's key layout, entry format and lock are kept, so RedBeat's own tools read
our schedules; what limits RedBeat at scale is replaced (see :class:`JobScheduler`):
entries are written and fired in pipelined batches, scores are sub-second, and the
lock is extended between batches. A ``<prefix>:generation`` key, written when a
rebuild starts, tells a Redis that lost its data from a tick that was merely slow.

Entries are written by a job's save (after its commit) and by a rebuild, each from a
row it read a moment before; the two can cross. Each entry carries, in a ``revision``
field of its hash (RedBeat reads only ``definition`` and ``meta``), the ``Job.revision``
of the row it was written from, and the scripts below write an entry only if the stored
revision is not newer than the writer's, and remove one only if it is not newer than
the one the remover knew (see :func:`remove_stale`). So a writer holding an older row
never undoes a later save, in whatever order their writes reach Redis.

When an entry is due, :class:`JobScheduler` sends ``workers.fire_job(job_id,
scheduled_for)`` to the job's queue; ``scheduled_for`` is the fire time that
became due, so the worker creates the run for exactly that time, once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from celery import Celery
from celery.schedules import BaseSchedule, schedstate
from django.conf import settings
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from kombu.exceptions import OperationalError as KombuOperationalError
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.celery import app as celery_app
from scheduler_app import presence, schedules
from scheduler_app.dispatch import FIRE_JOB, broker_priority
from scheduler_app.models import Job

logger = logging.getLogger(__name__)

_SCHEDULE_TYPE = "scheduler_app.JobSchedule"
REDIS_AWAY_RETRY = 2.0  # seconds between beat's looks at a Redis that does not answer
FIRE_BATCH = 500  # due entries read, sent and written back per round trip
SAVE_BATCH = 2000  # jobs read and written per call in a rebuild, and schedule members scanned
TICK_SECONDS = 1.0  # a tick with more due work than this returns to the loop (sleep 0)
# The fields of a job its entry is made from (Job.beat_params, schedule_reference,
# is_scheduled, the send options; Job.from_db reads schedule, timezone and enabled).
ENTRY_FIELDS = ("id", "schedule", "timezone", "enabled", "completed_at", "schedule_start",
                "last_fired_for", "start_at", "end_at", "jitter", "queue", "priority",
                "revision")  # fmt: skip


class JobValues(NamedTuple):
    """A job as the rebuild reads it: the values of ENTRY_FIELDS, which Job's own
    methods read as they read a Job (a tuple is made at C speed, unlike an object)."""

    id: int
    schedule: dict[str, Any]
    timezone: str
    enabled: bool
    completed_at: datetime | None
    schedule_start: datetime
    last_fired_for: datetime | None
    start_at: datetime | None
    end_at: datetime | None
    jitter: int
    queue: str
    priority: int
    revision: int

    @property
    def pk(self) -> int:
        return self.id


def redis_for(app: Celery) -> Redis:
    """RedBeat's client for ``app``, made once. RedBeat's ``get_redis`` walks every
    configuration key (all of Django's settings here) on each call, even when the
    client exists; beat's hot paths ask here instead."""
    client = getattr(app, "redbeat_redis", None)
    return client if client is not None else get_redis(app)


def generation_key(app: Celery) -> str:
    return app.redbeat_conf.key_prefix + ":generation"


class JobSchedule(BaseSchedule):
    """A job's fire times as beat sees them, from the plain values of Job.beat_params().

    The schedule object is shared by every job with the same schedule (see
    :mod:`scheduler_app.schedules.beat_cache`), so decoding an entry builds nothing.
    """

    def __init__(self, params: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.params = params
        self._schedule = schedules.beat_fire_times(params)

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


def score_of(due: datetime | None) -> float:
    """An entry's score: its due time to the microsecond (RedBeat's whole seconds make
    entries due within one second wait for the next); -1, never due, when None."""
    return -1 if due is None else due.timestamp()


# One decoder each, made once: ``json.loads(cls=...)`` builds a new one per call.
_DEFINITION_DECODER = JobScheduleDecoder()
_META_DECODER = RedBeatJSONDecoder()


class JobEntry(RedBeatSchedulerEntry):
    """A RedBeat entry that can store a JobSchedule, and whose last run only moves forward."""

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        return _DEFINITION_DECODER.decode(definition)

    @staticmethod
    def decode_meta(meta: str | None, app: Any = None) -> dict[str, Any]:
        return _META_DECODER.decode(meta) if meta else {"last_run_at": None}

    @property
    def due_at(self) -> datetime | None:
        """The next fire time itself: the entry's score in RedBeat's sorted set.

        RedBeat adds a "remaining from now" to the last run, which is early by the
        time since that run (harmless, but the score should say when it is due)."""
        if self.last_run_at is None or not isinstance(self.schedule, JobSchedule):
            return super().due_at
        return self.schedule.fire_time(self.last_run_at)

    @property
    def score(self) -> float:
        if not isinstance(self.schedule, JobSchedule):
            return super().score
        return score_of(self.due_at)

    def definition_json(self) -> str:
        return json.dumps(
            {
                "name": self.name, "task": self.task, "args": self.args, "kwargs": self.kwargs,
                "options": self.options, "schedule": self.schedule, "enabled": self.enabled,
            },
            cls=JobScheduleEncoder,
        )  # fmt: skip

    def save(self) -> JobEntry:
        """Write the entry; its stored ``last_run_at`` only ever moves forward (see
        :func:`write_entries`)."""
        if not isinstance(self.schedule, JobSchedule):
            return super().save()
        row = EntryRow(self.key, self.definition_json(), self.last_run_at,
                       schedules.beat_fire_times(self.schedule.params))  # fmt: skip
        write_entries([row], self.app)
        self.last_run_at, self.total_run_count = row.last_run_at, row.total_run_count
        return self

    @staticmethod
    def _stored_last_run_at(meta: str | None) -> datetime | None:
        if not meta:
            return None
        return _META_DECODER.decode(meta).get("last_run_at")


@dataclass
class EntryRow:
    """A job entry to write: its key, its definition (JSON), the instant its next fire
    time is counted from and the revision of the job's row it comes from (None: not
    known, the stored one is kept); what is written comes from these alone (the run
    count starts again at 0, as RedBeat's own saves do)."""

    key: str
    definition: str
    last_run_at: datetime
    fire_times: schedules.FireTimes
    revision: int | None = None
    total_run_count: int = 0


def write_entries(rows: list[EntryRow], app: Celery) -> None:
    """Write entries: read their stored metas in one call, then write definitions, metas
    and scores in one script, which writes an entry only if its meta is still the one read,
    and leaves one written from a later row of its job (a newer stored revision) as it is.

    Beat writes ``last_run_at`` after each fire; a stored one later than ours is kept,
    and an entry beat wrote between our read and our write is read and written again,
    so a save racing beat can never set it back and fire a slot twice.
    """
    client = redis_for(app)
    schedule_key = app.redbeat_conf.schedule_key
    while rows:
        rows = _write_unless_changed(client, rows, schedule_key)


# One command per batch instead of one per entry: redis-py spends more time packing and
# parsing thousands of small commands than Redis spends running them. The scripts are
# made once (bytes: no client needed to hash them) and called with a client.
READ_FIELD = Script(None, b"""
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('HGET', key, ARGV[1]) end
return found
""")  # fmt: skip
READ_ENTRIES = Script(None, b"""
local found = {}
for i, key in ipairs(KEYS) do
    local entry = redis.call('HMGET', key, 'definition', 'meta')
    found[2 * i - 1], found[2 * i] = entry[1], entry[2]
end
return found
""")  # fmt: skip
# KEYS: the entries, then the schedule. ARGV[1]: a JSON list, per entry [the meta read
# ('' for none), definition, meta, score, revision (null: not known)]. An entry stored
# with a newer revision (no revision: -1) is left as it is. Returns the (1-based) indexes
# of the others whose meta is no longer the one read: left alone, to be read and written
# again.
WRITE_ENTRIES = Script(None, b"""
local schedule = table.remove(KEYS)
local rows = cjson.decode(ARGV[1])
local changed = {}
for i, key in ipairs(KEYS) do
    local row = rows[i]
    local stored = redis.call('HMGET', key, 'meta', 'revision')
    local known = row[5] ~= cjson.null
    if known and stored[2] and tonumber(stored[2]) > row[5] then
        -- written from a later row of the job: kept
    elseif (stored[1] or '') ~= row[1] then
        changed[#changed + 1] = i
    else
        redis.call('HSET', key, 'definition', row[2], 'meta', row[3])
        if known then redis.call('HSET', key, 'revision', row[5]) end
        redis.call('ZADD', schedule, row[4], key)
    end
end
return changed
""")  # fmt: skip
# KEYS: the entries, then the schedule. ARGV[1]: a JSON list, per entry the revision the
# caller knew (null: remove whatever is stored). An entry stored with a newer revision
# (no revision: -1) is kept: a save wrote it since. Returns how many left the schedule.
REMOVE_ENTRIES = Script(None, b"""
local schedule = table.remove(KEYS)
local known = cjson.decode(ARGV[1])
local removed = 0
for i, key in ipairs(KEYS) do
    local stored = tonumber(redis.call('HGET', key, 'revision') or '-1')
    if known[i] == cjson.null or stored <= known[i] then
        removed = removed + redis.call('ZREM', schedule, key)
        redis.call('DEL', key)
    end
end
return removed
""")  # fmt: skip


# Beat's write-back after a batch. KEYS: the entries, then the schedule. ARGV[1]: a JSON
# list, per entry [definition read, meta read ('' for none), meta to write ('' for none),
# score ('' to remove it from the schedule)]. An entry whose definition or meta is no
# longer the one read (a save, a delete came between) is left alone and its index returned.
WRITE_BACK = Script(None, b"""
local schedule = table.remove(KEYS)
local rows = cjson.decode(ARGV[1])
local changed = {}
for i, key in ipairs(KEYS) do
    local row = rows[i]
    local entry = redis.call('HMGET', key, 'definition', 'meta')
    if (entry[1] or '') == row[1] and (entry[2] or '') == row[2] then
        if row[3] ~= '' then redis.call('HSET', key, 'meta', row[3]) end
        if row[4] == '' then
            redis.call('ZREM', schedule, key)
        else
            redis.call('ZADD', schedule, row[4], key)
        end
    else
        changed[#changed + 1] = i
    end
end
return changed
""")  # fmt: skip


# A page of ZSCAN, its members without their scores (half the reply, no floats to parse):
# the cursor, then the members.
SCAN_MEMBERS = Script(None, b"""
local page = redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local found = {page[1]}
for i = 1, #page[2], 2 do found[#found + 1] = page[2][i] end
return found
""")  # fmt: skip


def read_entries(client: Redis, keys: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """The definition and meta of each entry (None where missing), in one call."""
    flat = READ_ENTRIES(keys=keys, client=client)
    return dict(zip(keys, zip(flat[0::2], flat[1::2], strict=True), strict=True))


def _write_unless_changed(client: Redis, rows: list[EntryRow], schedule_key: str) -> list[EntryRow]:
    """Write ``rows``; return those beat wrote meanwhile (not written)."""
    keys = [row.key for row in rows]
    stored = READ_FIELD(keys=keys, args=["meta"], client=client)
    # Entries of a rebuild share a few schedules and references: each distinct one's
    # fire time, meta and stored time are worked out once per batch.
    scores: dict[tuple[int, datetime], str] = {}
    metas: dict[tuple[datetime, int], str] = {}
    stored_times: dict[str, datetime | None] = {}
    writes: list[tuple[str, str, str, str, int | None]] = []
    for row, meta in zip(rows, stored, strict=True):
        if meta:
            if meta not in stored_times:
                stored_times[meta] = JobEntry._stored_last_run_at(meta)
            newer = stored_times[meta]
            if newer is not None and newer > row.last_run_at:
                row.last_run_at = newer
        fire_key = (id(row.fire_times), row.last_run_at)
        if fire_key not in scores:
            fire = row.fire_times.next_after(row.last_run_at.astimezone(UTC))
            scores[fire_key] = repr(score_of(fire))
        meta_key = (row.last_run_at, row.total_run_count)
        if meta_key not in metas:
            metas[meta_key] = meta_json(row.last_run_at, row.total_run_count)
        writes.append((meta or "", row.definition, metas[meta_key], scores[fire_key],
                       row.revision))  # fmt: skip
    changed = WRITE_ENTRIES(keys=[*keys, schedule_key], args=[json.dumps(writes)], client=client)
    return [rows[index - 1] for index in changed]


_ENCODER = RedBeatJSONEncoder()


def meta_json(last_run_at: datetime, total_run_count: int) -> str:
    """An entry's meta as RedBeat writes it (its encoder's datetime, the C JSON encoder)."""
    meta = {"last_run_at": _ENCODER.default(last_run_at), "total_run_count": total_run_count}
    return json.dumps(meta)


def entry_name(job_id: int) -> str:
    return f"job:{job_id}"


def row_for(job: Any, prefix: str) -> EntryRow:
    """The entry of a job: a Job, or any object with the fields of ENTRY_FIELDS (Job's
    own methods read it, so what is written is what ``Job`` says)."""
    params = Job.beat_params(job)
    definition = {
        "name": entry_name(job.id), "task": FIRE_JOB, "args": [job.id], "kwargs": {},
        "options": {"queue": job.queue, "priority": broker_priority(job.priority)},
        "schedule": {"__type__": _SCHEDULE_TYPE, "params": params}, "enabled": True,
    }  # fmt: skip
    reference = Job.schedule_reference.fget(job)  # type: ignore[attr-defined]
    return EntryRow(prefix + entry_name(job.id), json.dumps(definition), reference,
                    schedules.beat_fire_times(params), job.revision)  # fmt: skip


def save_entries(jobs: Iterable[Any], app: Celery | None = None) -> int:
    """Write the entries of ``jobs`` (all scheduled), SAVE_BATCH to a transaction."""
    app = app or celery_app
    redis_for(app)  # binds app.redbeat_conf
    prefix = app.redbeat_conf.key_prefix
    batch: list[EntryRow] = []
    saved = 0
    for job in jobs:
        batch.append(row_for(job, prefix))
        if len(batch) == SAVE_BATCH:
            write_entries(batch, app)
            saved, batch = saved + len(batch), []
    write_entries(batch, app)
    return saved + len(batch)


def save_entry(job: Any, app: Celery | None = None) -> None:
    save_entries([job], app)


def remove_entry(job_id: int, app: Celery | None = None, revision: int | None = None) -> None:
    """Remove the job's entry; with ``revision`` (of a row found not scheduled), only if
    it was not written from a later row (a resume saved since)."""
    app = app or celery_app
    client = redis_for(app)
    keys = [app.redbeat_conf.key_prefix + entry_name(job_id), app.redbeat_conf.schedule_key]
    REMOVE_ENTRIES(keys=keys, args=[json.dumps([revision])], client=client)


def last_sent(job_id: int, app: Celery | None = None) -> datetime | None:
    """When beat last sent the job's fire (its entry's last run), None if never or unknown."""
    app = app or celery_app
    redis_for(app)  # binds app.redbeat_conf
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
    client = redis_for(app)
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
    if job is None:
        remove_entry(job_id)
    elif job.is_scheduled:
        save_entry(job)
    else:
        remove_entry(job_id, revision=job.revision)


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


class Rebuild:
    """Rebuilding every job entry from the database, one batch of jobs per :meth:`step`,
    then removing the entries of jobs no longer scheduled, one page of the schedule
    (ZSCAN) per step.

    Beat runs a step per tick, between the batches it fires, so a rebuild of any size
    neither stops the firing of what Redis already holds nor outlives beat's lock. It
    starts by writing a new generation key: a Redis that loses its data loses that
    key too, which is how beat tells a flush from a slow tick.
    """

    def __init__(self, app: Celery, batch: int = SAVE_BATCH):
        self.app, self.batch = app, batch
        self.after_id = 0
        self.scheduled: set[int] = set()
        self.saved = self.removed = 0
        self.scanning = False  # every job is saved; the schedule is scanned for stale ones
        self.cursor = 0
        self.done = False
        redis_for(app).set(generation_key(app), uuid.uuid4().hex)

    def step(self) -> bool:
        """Rebuild the next batch of jobs, or look at the next page of the schedule
        (the last batch and the first page in one step); True once done."""
        if not self.scanning:
            self._save_next_jobs()
        if self.scanning:
            self._remove_next_stale()
        return self.done

    def _save_next_jobs(self) -> None:
        # The schedule is read as text and each distinct one decoded once a batch: jobs
        # share a few schedules, and decoding one costs more than all its other fields.
        rows = (
            Job.objects.filter(enabled=True, completed_at__isnull=True, id__gt=self.after_id)
            .order_by("id")
            .annotate(schedule_text=Cast("schedule", TextField()))
            .values_list("id", "schedule_text", *ENTRY_FIELDS[2:])[: self.batch]
        )
        decoded: dict[str, dict[str, Any]] = {}
        jobs = [
            JobValues(job_id, decoded.get(text) or decoded.setdefault(text, json.loads(text)),
                      *values)
            for job_id, text, *values in rows
        ]  # fmt: skip
        if jobs:
            self.after_id = jobs[-1].id
            scheduled = [job for job in jobs if Job.is_scheduled.fget(job)]  # type: ignore[attr-defined]
            self.saved += save_entries(scheduled, self.app)
            self.scheduled.update(job.id for job in scheduled)
        self.scanning = len(jobs) < self.batch

    def _remove_next_stale(self) -> None:
        client = redis_for(self.app)
        cursor, *page = SCAN_MEMBERS(keys=[self.app.redbeat_conf.schedule_key],
                                     args=[self.cursor, self.batch], client=client)  # fmt: skip
        self.cursor = int(cursor)
        self.removed += remove_stale(self.app, page, self.scheduled)
        self.done = self.cursor == 0


def remove_stale(app: Celery, keys: list[str], scheduled: set[int]) -> int:
    """Remove, of the schedule's ``keys``, the entries of jobs not in ``scheduled`` nor
    scheduled now (looked up again: one may have been resumed since the rebuild passed
    it); return how many were removed.

    The entries' revisions are read before the jobs are looked up, and an entry is
    removed only if its revision is still no newer: a job resumed or created after the
    lookup keeps the entry its save wrote (its save committed after the lookup, so it
    wrote after the read)."""
    prefix = app.redbeat_conf.key_prefix + "job:"
    candidates = sorted(
        {
            int(key[len(prefix) :])
            for key in keys
            if key.startswith(prefix) and int(key[len(prefix) :]) not in scheduled
        }
    )
    if not candidates:
        return 0
    client = redis_for(app)
    entry_keys = [prefix + str(job_id) for job_id in candidates]
    read = READ_FIELD(keys=entry_keys, args=["revision"], client=client)
    known = dict(zip(candidates, (int(revision or -1) for revision in read), strict=True))
    still = {
        job.id
        for job in Job.objects.filter(
            id__in=candidates, enabled=True, completed_at__isnull=True
        ).only("id", "schedule", "timezone", "enabled", "completed_at")
        if job.is_scheduled
    }
    stale = [job_id for job_id in candidates if job_id not in still]
    if not stale:
        return 0
    # A page of ZSCAN may repeat a key of an earlier one: the script counts what it removed.
    keys = [*(prefix + str(job_id) for job_id in stale), app.redbeat_conf.schedule_key]
    revisions = json.dumps([known[job_id] for job_id in stale])
    return REMOVE_ENTRIES(keys=keys, args=[revisions], client=client)


def reconcile(app: Celery | None = None) -> tuple[int, int]:
    """Rebuild every job entry from the database; remove entries of jobs not scheduled.

    Returns (entries saved, entries removed).
    """
    rebuild = Rebuild(app or celery_app)
    while not rebuild.step():
        pass
    return rebuild.saved, rebuild.removed


class JobScheduler(RedBeatScheduler):
    """RedBeat with a bounded tick, a rebuild that never runs inside a lock loss, and
    fires computed and sent in batches.

    A tick reads at most FIRE_BATCH due entries at a time (ZRANGEBYSCORE ... LIMIT),
    sends them through one producer and writes them back in one script (only the entries
    no save changed meanwhile), and extends the lock after each batch, so no amount of
    due work outlives the lock. A tick with due work left after TICK_SECONDS returns 0:
    the loop comes straight back. Otherwise beat sleeps until the next entry's
    (sub-second) score, at most ``beat_max_loop_interval``. Nothing a tick does grows
    with the number of entries.
    """

    Entry = JobEntry
    _redis_away = False  # set while Redis does not answer; repaired when it does
    _rebuild: Rebuild | None = None  # a rebuild from the database under way

    def setup_schedule(self) -> None:
        self._start_rebuild()

    def _start_rebuild(self) -> None:
        """Install the static entries (the sweeps), and rebuild the jobs' in the ticks."""
        super().setup_schedule()
        self._rebuild = Rebuild(self.app)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One beat tick; survives Redis going away, and losing its data.

        While Redis does not answer, beat waits for it instead of dying. When it
        answers again, beat keeps (or takes back, waiting as a standby beat does) its
        lock and rebuilds the job entries from the database, so jobs saved meanwhile
        are scheduled. A lost lock is taken back; the entries are rebuilt only when
        Redis lost its data (the generation key is gone), never for a slow tick.
        """
        try:
            if self._redis_away:
                self._recover()
            self._extend_lock()
            rebuilding = self._rebuild_step()
            wait = self._fire_due()
            return 0.0 if rebuilding else wait
        except LockNotOwnedError:
            self._take_lock_back()
            return 0.0
        except (RedisConnectionError, RedisTimeoutError, KombuOperationalError) as exc:
            if not self._redis_away:
                logger.warning("beat: Redis is not answering (%s); waiting for it", exc)
            self._redis_away = True
            return REDIS_AWAY_RETRY

    def _extend_lock(self) -> None:
        if self.lock_key:
            self.lock.extend(int(self.lock_timeout))

    def _rebuild_step(self) -> bool:
        """One batch of the rebuild under way, if any; True while it goes on."""
        if self._rebuild is None:
            return False
        if not self._rebuild.step():
            return True
        logger.info("beat: reconciled schedules: %d job entries saved, %d removed",
                    self._rebuild.saved, self._rebuild.removed)  # fmt: skip
        self._rebuild = None
        return False

    def _take_lock_back(self) -> None:
        if redis_for(self.app).exists(generation_key(self.app)):
            logger.warning("beat: lost the RedBeat lock (a slow tick); re-acquiring")
            self.lock.acquire()
            return
        logger.warning("beat: lost the RedBeat lock, and Redis lost its data (restarted or "
                       "flushed); re-acquiring")  # fmt: skip
        self._recover()

    def _recover(self) -> None:
        if not self.lock.owned():
            self.lock.acquire()
        # Jobs saved while Redis was away are only in the database: rebuild. And a Redis
        # that forgot everything forgot the static entries too (the sweeps that resend
        # lost messages), not only the jobs'.
        self._start_rebuild()
        self._redis_away = False
        logger.warning("beat: Redis answers; lock held, rebuilding the schedule")

    def _fire_due(self) -> float:
        """Send due entries, a batch at a time; the seconds until the next one is due."""
        client = redis_for(self.app)
        key = self.app.redbeat_conf.schedule_key
        started = time.monotonic()
        while True:
            now = self.app.now()
            with client.pipeline(transaction=False) as pipe:
                pipe.exists(generation_key(self.app))
                pipe.set(presence.tick_key(self.app.redbeat_conf.key_prefix), time.time())
                pipe.zrangebyscore(key, 0, now.timestamp(), start=0, num=FIRE_BATCH)
                pipe.zrangebyscore(key, f"({now.timestamp()}", "+inf", start=0, num=1,
                                   withscores=True)  # fmt: skip
                generation, _, due, upcoming = pipe.execute()
            if not generation:
                logger.warning("beat: Redis lost its data (no generation key); rebuilding")
                self._start_rebuild()
                return 0.0
            if not due:
                return self._until(upcoming)
            self._fire_batch(due, now)
            self._extend_lock()
            if time.monotonic() - started > TICK_SECONDS:
                return 0.0

    def _until(self, upcoming: list[tuple[str, float]]) -> float:
        if not upcoming:
            return self.max_interval
        return max(0.0, min(upcoming[0][1] - time.time(), self.max_interval))

    def _fire_batch(self, keys: list[str], now: datetime) -> None:
        """Read, send and write back one batch of due entries: three round trips in all."""
        client = redis_for(self.app)
        writes = _Writes(read_entries(client, keys))
        # One pipeline for the batch's messages too (kombu's publish batch), sent before
        # the entries are written back: a batch that fails sends nothing and moves nothing.
        with self.producer.batch(max_size=2 * len(keys) + 16):
            for key, (definition, meta) in writes.read.items():
                try:
                    decoded = JobEntry.decode_definition(definition) if definition else None
                except Exception:
                    logger.exception("beat: cannot read the entry %s; removing it", key)
                    decoded = None
                if decoded is None:
                    writes.gone.append(key)
                elif isinstance(decoded.get("schedule"), JobSchedule):
                    self._fire_job(key, decoded, JobEntry.decode_meta(meta), now, writes)
                else:
                    self._fire_static(key, decoded, JobEntry.decode_meta(meta), now, writes)
        self._write_back(writes, now)
        if writes.sent:
            logger.info("beat: sent %d due jobs", writes.sent)

    def _write_back(self, writes: _Writes, now: datetime) -> None:
        """Write back what a batch decided, for the entries still as beat read them.

        An entry a save changed meanwhile (an edit, a disable, a delete) keeps what the
        save wrote; if beat sent it, its fire is then recorded on the saved entry, as
        if the save had come just after: ``last_run_at`` moves forward to now (never
        back) and the score is the saved schedule's next fire time after it. An entry
        deleted meanwhile stays deleted.
        """
        client = redis_for(self.app)
        schedule_key = self.app.redbeat_conf.schedule_key
        fired = writes.execute(client, schedule_key)
        while fired:
            writes = _Writes(read_entries(client, fired))
            for key, (definition, meta) in writes.read.items():
                self._record_fire(key, definition, meta, now, writes)
            fired = writes.execute(client, schedule_key)

    def _record_fire(self, key: str, definition: str | None, meta: str | None,
                     now: datetime, writes: _Writes) -> None:  # fmt: skip
        """Record a fire sent at ``now`` on an entry a save rewrote since beat read it."""
        try:
            decoded = JobEntry.decode_definition(definition) if definition else {}
        except Exception:
            decoded = {}  # the next tick reads it again, and removes it
        schedule = decoded.get("schedule")
        if not isinstance(schedule, JobSchedule):
            return  # deleted (or disabled) meanwhile: nothing to record
        stored = JobEntry.decode_meta(meta)
        last = max(stored.get("last_run_at") or now, now)
        writes.metas[key] = meta_json(last, (stored.get("total_run_count") or 0) + 1)
        writes.scores[key] = score_of(schedule.fire_time(last))

    def _fire_job(self, key: str, decoded: dict[str, Any], meta: dict[str, Any],
                  now: datetime, writes: _Writes) -> None:  # fmt: skip
        schedule: JobSchedule = decoded["schedule"]
        fire = schedule.fire_time(meta.get("last_run_at") or now)
        if fire is None or fire > now:  # not due after all (an edit moved it): rescore
            writes.scores[key] = score_of(fire)
            return
        logger.debug("beat: sending due job %s (%s)", key, fire.isoformat())
        self._send(decoded, fire, now)
        count = (meta.get("total_run_count") or 0) + 1
        writes.metas[key] = meta_json(now, count)
        writes.scores[key] = score_of(schedule.fire_time(now))
        writes.sent += 1

    def _send(self, decoded: dict[str, Any], fire: datetime, now: datetime) -> None:
        """Publish ``fire_job`` through beat's one producer (Celery's send_task, without
        the registry lookups and, unless asked, the task-sent event)."""
        amqp, name = self.app.amqp, decoded["task"]
        args = decoded.get("args") or []
        kwargs = {**(decoded.get("kwargs") or {}), "scheduled_for": fire.isoformat(),
                  "sent_at": now.isoformat()}  # fmt: skip
        options = amqp.router.route(dict(decoded.get("options") or {}), name, args, kwargs)
        message = amqp.create_task_message(
            uuid.uuid4().hex, name, args, kwargs, reply_to=self.app.thread_oid,
            create_sent_event=settings.SCHEDULER_BEAT_SENT_EVENTS,
            argsrepr=repr(args), kwargsrepr=repr(kwargs),
        )  # fmt: skip
        producer = self.producer
        with producer.connection._reraise_as_library_errors():
            amqp.send_task_message(producer, name, message, headers={"celery_beat_task": True},
                                   **options)  # fmt: skip

    def _fire_static(self, key: str, decoded: dict[str, Any], meta: dict[str, Any],
                     now: datetime, writes: _Writes) -> None:  # fmt: skip
        """A static entry (the sweeps): RedBeat's own path, which writes it back itself."""
        entry = JobEntry(app=self.app, **{**decoded, **meta})
        entry.last_run_at = meta["last_run_at"]
        is_due, _ = entry.is_due()
        wait = self.maybe_due(entry, producer=self.producer)
        if not is_due:  # RedBeat's whole-second score was early: due in ``wait`` s
            writes.scores[key] = now.timestamp() + (wait or self.max_interval)


class _Writes:
    """What one batch writes back to Redis, checked against what it read (see
    WRITE_BACK): ``read`` holds each entry's definition and meta as read."""

    def __init__(self, read: dict[str, tuple[str | None, str | None]]) -> None:
        self.read = read
        self.metas: dict[str, str] = {}
        self.scores: dict[str, float] = {}
        self.gone: list[str] = []
        self.sent = 0

    def execute(self, client: Redis, schedule_key: str) -> list[str]:
        """Write back, in one script; return the keys of the entries beat sent whose
        definition or meta changed since they were read (their fire is not recorded)."""
        if self.gone:
            logger.warning("beat: removing entries that cannot be loaded: %s", self.gone)
        keys = [*self.scores, *self.gone]
        if not keys:
            return []
        rows = []
        for key in keys:
            definition, meta = self.read[key]
            score = repr(self.scores[key]) if key in self.scores else ""
            rows.append((definition or "", meta or "", self.metas.get(key, ""), score))
        changed = WRITE_BACK(keys=[*keys, schedule_key], args=[json.dumps(rows)], client=client)
        return [keys[index - 1] for index in changed if keys[index - 1] in self.metas]
