"""A run's life: every change of ``Run.status``, and the only code that writes it.

Each transition is one conditional UPDATE (or one INSERT guarded by the run's
unique identity): the row count says whether this caller won, so two workers,
two beats or a user and a worker racing on one run cannot both change it.

===============  ==========  ==============  ==================================================
from             to          function        who
===============  ==========  ==============  ==================================================
(new)            queued      create          a fire, run now, a retry, a dependency, a fan-out
(new)            running     create_running  a fire on a worker, when the job's policy admits any
(new)            skipped     record_skipped  a fire: outside the window, on a calendar date
(new)            missed      record_missed   a fire: passed while beat or the job was down
queued           running     claim           a worker, when the concurrency policy admits it
queued           skipped     skip            a worker: ``forbid``, or ``allow`` at its limit
queued           waiting     wait            a worker: ``queue_one`` while another run runs
waiting          queued      release         the orchestrator, as the running run ends
queued           queued      requeue         the sweep: due long ago, never claimed (message lost)
waiting          skipped     halt            the orchestrator: a targeted child not sent after a
                                             failure (``halt_on_failure``)
queued, waiting  cancelled   cancel          a user; ``replace``
running          cancelled   cancel          a user; ``replace`` (its node kills the process)
running          succeeded,  finish          the worker, as the process ends
                 failed,
                 timed_out,
                 skipped
cancelled        cancelled   finish          the worker: the killed process's end, recorded once
running          lost        lose            the reaper (no heartbeat), or its node restarting
===============  ==========  ==============  ==================================================

Every other status is final. What follows a transition (retries, dependents,
notifications, a waiting run's release) is decided by the policy modules and
applied by :mod:`scheduler_app.services`.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef
from django.utils import timezone

from scheduler_app.models import Calendar, Job, JobDependency, Run

logger = logging.getLogger(__name__)

Status = Run.Status


def create(**fields: Any) -> Run | None:
    """Insert a queued run, or return None when its identity (job, time, attempt, node)
    exists already: a doubled dispatch, a redelivered message, a second beat."""
    if "status" in fields:
        raise ValueError("a new run is queued; use record_skipped or record_missed")
    return _insert(fields)


def create_running(worker: str, **fields: Any) -> Run | None:
    """Insert a run already claimed by ``worker`` (create and claim in one statement): for
    a job whose policy admits any number of runs at once, there is nothing to check."""
    now = timezone.now()
    return _insert({**fields, "status": Status.RUNNING, "worker": worker, "started_at": now,
                    "heartbeat_at": now})  # fmt: skip


def record_skipped(job: Job, scheduled_for: datetime, reason: str) -> Run | None:
    """A fire time that does not run (window, calendar), recorded once as skipped."""
    return _insert({"job": job, "trigger": Run.Trigger.SCHEDULE, "scheduled_for": scheduled_for,
                    "status": Status.SKIPPED, "error": reason,
                    "finished_at": timezone.now()})  # fmt: skip


def record_missed(
    job: Job, scheduled_for: datetime, reason: str, result: dict | None = None
) -> Run | None:
    """A fire time that passed while nothing could run it, recorded once as missed."""
    return _insert({"job": job, "trigger": Run.Trigger.SCHEDULE, "scheduled_for": scheduled_for,
                    "status": Status.MISSED, "error": reason, "finished_at": timezone.now(),
                    "result": result})  # fmt: skip


def _insert(fields: dict[str, Any]) -> Run | None:
    try:
        if not connection.in_atomic_block:  # one statement: nothing to roll back but itself
            return Run.objects.create(**fields)
        with transaction.atomic():
            return Run.objects.create(**fields)
    except IntegrityError:
        logger.info("run %s exists already; duplicate ignored", _identity(fields))
        return None


def claim(run: Run, worker: str, *, alone: bool = False) -> bool:
    """queued -> running on ``worker``; its heartbeat starts now, and ``run`` (the
    worker's copy) says so too. With ``alone``, only while no other run of its job runs:
    the caller holds the job's lock, so this one statement is the concurrency check and
    the claim together."""
    now = timezone.now()
    queued = Run.objects.filter(id=run.id, status=Status.QUEUED)
    if alone:
        queued = queued.filter(~Exists(_running_of(OuterRef("job_id"))))
    if not queued.update(status=Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker,
                         error=""):  # fmt: skip
        return False
    run.status, run.worker, run.error = Status.RUNNING, worker, ""
    run.started_at = run.heartbeat_at = now
    return True


def claim_at_once(run_id: int, worker: str, *, alone: bool) -> Run | None:
    """queued -> running in one statement, with no lock, for a run whose start nothing
    else decides: a fan-out child (its parent passed the policy), a run of a job whose
    policy admits any number at once; with ``alone``, also one while no other run of its
    job runs (only where the database takes writes one at a time, so that this
    statement's check still holds when it writes: SQLite). Returns the run, read back by
    the claim, with its job (and whether any job depends on it): read by the same
    statement on PostgreSQL, just after on SQLite (no UPDATE in a WITH there). None
    when this statement did not claim it (claimed elsewhere, cancelled, waiting, or its
    policy must look at the other runs under the job's lock, or the database cannot
    return rows from an UPDATE: SQLite before 3.35, whose flag Django names for INSERT)."""
    if not connection.features.can_return_columns_from_insert:
        return None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    together = connection.vendor == "postgresql"
    sql = _CLAIM_AND_READ if together else _CLAIM_ALONE if alone else _CLAIM_FREE
    with _cursor() as cursor:
        cursor.execute(sql, [now, now, worker, run_id])
        row = cursor.fetchone()
    if row is None:
        return None
    run = _instance(Run, row[:_RUN_WIDTH])
    job = _job(row[_RUN_WIDTH:]) if together else read_job(run.job_id)
    if job is None:  # deleted meanwhile, and its runs with it
        return None
    run.job, run.job_has_dependents = job, job.has_dependents  # type: ignore[attr-defined]
    return run


def read_job(job_id: int) -> Job | None:
    """The job with its calendar, and whether any job depends on it (``has_dependents``),
    in one statement: what a worker reads to fire or run it."""
    with _cursor() as cursor:
        cursor.execute(_READ_JOB, [job_id])
        row = cursor.fetchone()
    return None if row is None else _job(row)


def _job(row: tuple[Any, ...]) -> Job:
    """The job of a row of :func:`_select_job`'s columns."""
    job = _instance(Job, row[:_JOB_WIDTH])
    calendar = row[_JOB_WIDTH:-1]
    job.calendar = _instance(Calendar, calendar) if calendar[0] is not None else None
    job.has_dependents = bool(row[-1])  # type: ignore[attr-defined]
    return job


def running_of(job_id: int) -> list[int]:
    """The ids of the job's running runs (fan-out children aside), oldest first."""
    return list(_running_of(job_id).order_by("id").values_list("id", flat=True))


def _running_of(job_id: Any) -> Any:
    return Run.objects.filter(job_id=job_id, status=Status.RUNNING, parent__isnull=True)


def skip(run_id: int, reason: str) -> bool:
    """queued -> skipped, with the reason."""
    return _move(run_id, [Status.QUEUED], status=Status.SKIPPED, error=reason,
                 finished_at=timezone.now())  # fmt: skip


def wait(run_id: int, reason: str) -> bool:
    """queued -> waiting, with the reason (the run it waits for)."""
    return _move(run_id, [Status.QUEUED], status=Status.WAITING, error=reason)


def halt(run_id: int, reason: str) -> bool:
    """waiting -> skipped, with the reason: a targeted child that will not be sent."""
    return _move(run_id, [Status.WAITING], status=Status.SKIPPED, error=reason,
                 finished_at=timezone.now())  # fmt: skip


def release(run_id: int) -> bool:
    """waiting -> queued: it may start now (and is sent now)."""
    return _move(run_id, [Status.WAITING], status=Status.QUEUED, error="",
                 due_at=timezone.now())  # fmt: skip


def requeue(run_id: int, stale_before: datetime) -> bool:
    """queued -> queued, sent again: its message was due before ``stale_before`` and no
    worker has claimed it (the message was lost with a flushed or restarted Redis).
    Only one sweep wins; a late original and its copy still start it once (claim)."""
    return bool(
        Run.objects.filter(id=run_id, status=Status.QUEUED, due_at__lt=stale_before).update(
            due_at=timezone.now()
        )
    )


def cancel(run_id: int, reason: str) -> bool:
    """queued, waiting or running -> cancelled. A running run's node sees the change at
    its next output flush and kills the process; :func:`finish` then adds its end."""
    return _move(run_id, [Status.QUEUED, Status.WAITING, Status.RUNNING],
                 status=Status.CANCELLED, error=reason, finished_at=timezone.now())  # fmt: skip


def finish(
    run: Run, status: str, *, exit_code: int | None = None, output: str = "", error: str = "",
    result: dict | None = None,
) -> str:  # fmt: skip
    """running -> ``status``; or, for a run cancelled while it ran, its process's end
    recorded once (it stays cancelled, with the cancel's reason). Returns the status
    recorded, or "" when the run had ended already (a redelivered report).

    ``run`` is the worker's copy, from its claim: what is written is set on it too
    (but for a cancelled run's reason, which only the row has)."""
    now = timezone.now()
    if run.started_at is None:  # a copy from before the claim
        run.started_at = _started_at(run.id)
    end = {"finished_at": now, "duration": _seconds_since(run.started_at, now),
           "exit_code": exit_code, "output": output, "result": result}  # fmt: skip
    if Run.objects.filter(id=run.id, status=Status.RUNNING).update(
        status=status, error=error, **end
    ):
        run.status, run.error = status, error
    elif Run.objects.filter(
        id=run.id, status=Status.CANCELLED, started_at__isnull=False, duration__isnull=True
    ).update(**end):
        run.status = Status.CANCELLED
    else:
        return ""
    for field, value in end.items():
        setattr(run, field, value)
    return run.status


def finish_counted(
    run: Run, status: str, *, exit_code: int | None, output: str, error: str,
    result: dict | None,
) -> bool:  # fmt: skip
    """running -> ``status`` and the job's figures counted, together (one statement on
    PostgreSQL, one transaction on SQLite), for an end that sets off nothing else.
    False, with nothing written, when the run was no longer running (cancelled, ended
    already): :func:`finish` then says what happened. ``run`` is the worker's copy from
    its claim: what is written is set on it too."""
    now = timezone.now()
    end = {"finished_at": now, "duration": _seconds_since(run.started_at, now),
           "exit_code": exit_code, "output": output, "result": result}  # fmt: skip
    adapt = connection.ops.adapt_datetimefield_value
    ended = [status, error, adapt(now), end["duration"], exit_code, output,
             _RESULT.get_db_prep_save(result, connection), run.id]  # fmt: skip
    counted = [adapt(run.started_at or now), status, int(status in Run.FAILURES), run.job_id]
    if not _ended_and_counted(ended, counted):
        return False
    run.status, run.error = status, error
    for field, value in end.items():
        setattr(run, field, value)
    return True


def _ended_and_counted(ended: list[Any], counted: list[Any]) -> bool:
    with _cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_END_AND_COUNT, ended + counted)
            return cursor.rowcount == 1
        with transaction.atomic():
            cursor.execute(_END, ended)
            if cursor.rowcount != 1:
                return False
            cursor.execute(_COUNT, counted)
    return True


def lose(run_id: int, reason: str) -> bool:
    """running -> lost: the process died with its node."""
    now = timezone.now()
    return _move(run_id, [Status.RUNNING], status=Status.LOST, error=f"lost: {reason}",
                 finished_at=now, duration=_seconds_since(_started_at(run_id), now))  # fmt: skip


def suspect(run_ids: list[int]) -> int:
    """Running runs found silent by a sweep: lost at the next sweep unless they beat
    again meanwhile (not a status change: a note the next sweep reads)."""
    return Run.objects.filter(id__in=run_ids, status=Status.RUNNING).update(
        suspected_at=timezone.now()
    )


def save_output(run_id: int, output: str, pid: int | None = None) -> bool:
    """The output so far of a running run, its heartbeat and the process group its node
    started for it (shown to operators); False once it is no longer running (cancelled,
    or lost), so its node stops the process."""
    return _beat(run_id, output=output, pid=pid) if pid else _beat(run_id, output=output)


def beat(run_id: int) -> bool:
    """The heartbeat of a running run that has no output to save (an HTTP request)."""
    return _beat(run_id)


def _beat(run_id: int, **fields: Any) -> bool:
    return bool(
        Run.objects.filter(id=run_id, status=Status.RUNNING).update(
            heartbeat_at=timezone.now(), **fields
        )
    )


def note(run_id: int, **fields: Any) -> None:
    """Fields that are not its status (a fan-out's progress, its worker label)."""
    if "status" in fields:
        raise ValueError("a run's status changes only through the transitions of runs.py")
    Run.objects.filter(id=run_id).update(**fields)


def _move(run_id: int, sources: list[str], **fields: Any) -> bool:
    return bool(Run.objects.filter(id=run_id, status__in=sources).update(**fields))


def _started_at(run_id: int) -> datetime | None:
    return Run.objects.filter(id=run_id).values_list("started_at", flat=True).first()


def _seconds_since(start: datetime | None, now: datetime) -> float | None:
    return (now - start).total_seconds() if start else None


def _identity(fields: dict[str, Any]) -> str:
    job = getattr(fields.get("job"), "id", None)
    return f"job {job} at {fields.get('scheduled_for')} #{fields.get('attempt', 1)}"


# --- the statements of a run's hot path, in plain SQL (issue 12) ---------------------
# Compiling an ORM query costs more CPU than the database takes to run it; these are
# the few statements every run of a busy worker makes. The same SQL serves SQLite and
# PostgreSQL; values go through the fields' own adapters and converters, as the ORM's
# would (SQLite stores datetimes as text in UTC, JSON as text). The 0017/0018 triggers
# on the run table fire for these as for any UPDATE; no Django signal is sent for runs.

_RUN, _JOB = Run._meta.db_table, Job._meta.db_table
_RESULT = Run._meta.get_field("result")


def _columns(model: type[models.Model], table: str) -> str:
    return ", ".join(f'{table}."{field.column}"' for field in model._meta.concrete_fields)


_QUEUED, _RUNNING = f"'{Status.QUEUED}'", f"'{Status.RUNNING}'"
_CLAIM = f"""UPDATE {_RUN} SET "status" = {_RUNNING}, "started_at" = %s, "heartbeat_at" = %s,
    "worker" = %s, "error" = '' WHERE "id" = %s AND "status" = {_QUEUED} AND (
        "parent_id" IS NOT NULL
        OR "job_id" IN (SELECT "id" FROM {_JOB} WHERE "max_concurrent" IS NULL
                        AND "concurrency_policy" = '{Job.ConcurrencyPolicy.ALLOW}') {{alone}})
    RETURNING {_columns(Run, _RUN)}"""
_CLAIM_FREE = _CLAIM.format(alone="")
_CLAIM_ALONE = _CLAIM.format(
    alone=f"""OR NOT EXISTS (SELECT 1 FROM {_RUN} other
        WHERE other."job_id" = {_RUN}."job_id" AND other."status" = {_RUNNING}
        AND other."parent_id" IS NULL)"""
)
_CALENDAR = Calendar._meta.db_table
_RUN_WIDTH, _JOB_WIDTH = len(Run._meta.concrete_fields), len(Job._meta.concrete_fields)


def _select_job(source: str, before: str = "") -> str:
    """A SELECT of ``before`` then the job, its calendar and whether any job depends on
    it, from ``source`` (the job table, or a table joined to it)."""
    return f"""SELECT {before}{_columns(Job, _JOB)}, {_columns(Calendar, _CALENDAR)},
    EXISTS (SELECT 1 FROM {JobDependency._meta.db_table} WHERE "upstream_id" = {_JOB}."id")
    FROM {source} LEFT JOIN {_CALENDAR} ON {_CALENDAR}."id" = {_JOB}."calendar_id"
    """


_READ_JOB = f'{_select_job(_JOB)} WHERE {_JOB}."id" = %s'
# PostgreSQL: the claim and the read in one statement (the run's columns, then the job's).
_CLAIM_AND_READ = f"""WITH claimed AS ({_CLAIM_FREE})
    {_select_job(f'claimed JOIN {_JOB} ON {_JOB}."id" = claimed."job_id"', "claimed.*, ")}"""
_END = f"""UPDATE {_RUN} SET "status" = %s, "error" = %s, "finished_at" = %s, "duration" = %s,
    "exit_code" = %s, "output" = %s, "result" = %s WHERE "id" = %s AND "status" = {_RUNNING}"""
_COUNT = f"""UPDATE {_JOB} SET "last_run_at" = %s, "last_status" = %s,
    "total_runs" = "total_runs" + 1, "failed_runs" = "failed_runs" + %s WHERE "id" = %s"""
# PostgreSQL: both in one statement, the count only where the end was written (so its
# row count says whether the run ended here).
_END_AND_COUNT = f"""WITH ended AS ({_END} RETURNING "job_id")
    {_COUNT} AND "id" IN (SELECT "job_id" FROM ended)"""


def _cursor() -> Any:
    """A cursor for these statements. PostgreSQL: one binding its values on the server,
    so that psycopg prepares a statement run ``prepare_threshold`` times on the
    connection (config/settings.py) and the server stops planning it for every run
    (about 1 ms of its CPU for the claim). Django's own cursors bind on the client
    (some ORM queries need it), and never prepare. Made and wrapped as Django makes
    any (its health check, errors, the queries' log)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # needs psycopg 3

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:  # as BaseDatabaseWrapper._cursor does
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def _instance(model: type[models.Model], row: tuple[Any, ...]) -> Any:
    """The ``model`` of a row holding its concrete fields in order, converted as a query
    of the ORM would convert them."""
    db = connections[DEFAULT_DB_ALIAS]  # the thread's own, once: not through the proxy
    values = list(row)
    for index, col, converters in _converters(model, db):
        for convert in converters:
            values[index] = convert(values[index], col, db)
    return model.from_db(db.alias, _attnames(model), values)


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.lru_cache(maxsize=64)
def _converters(model: type[models.Model], db: BaseDatabaseWrapper) -> list[tuple[int, Any, list]]:
    """Per field of ``model`` that needs any: its index, column and the converters the
    ORM would apply on ``db`` (worked out once: asking costs more than converting)."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.cached_col
        if converters := db.ops.get_db_converters(col) + field.get_db_converters(db):
            found.append((index, col, converters))
    return found
