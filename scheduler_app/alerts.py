"""The dead-man's switch: what should have happened and did not.

Four kinds of alert, each open while its condition holds and resolved when it
stops holding:

``missed``
    A slot of a job with ``alert_if_missed`` passed that many seconds ago and no
    run started for it: beat did not send it, no worker took it from the job's
    queue, or the job was paused. Resolved once the job is back on its schedule.
``late``
    A scheduled run started more than ``alert_if_late`` seconds after its slot.
    Judged as the run starts; resolved by the next run that starts in time.
``long_running``
    A run has been running longer than ``alert_if_longer`` seconds or, with
    ``"auto"``, SCHEDULER_LONG_RUN_FACTOR times the p95 duration of its job's
    recent successful runs. Resolved when no run of the job is over its limit.
``scheduler_down``
    An entry of beat's schedule has been overdue for SCHEDULER_DOWN_AFTER
    seconds: no beat is sending. Told to SCHEDULER_ADMIN_EMAILS and
    SCHEDULER_ADMIN_WEBHOOK.

A job has at most one open alert of each kind (a unique constraint), so a
condition that lasts (a queue with no worker under a job every ten seconds) is
told once, as it begins, not at every slot. An alert opens together with its
notification, an outbox row sent like a run's (``workers.notify``); its end is
told too (event ``resolved``), to whoever was told of its beginning.

The checks for what did not happen run in the workers' watchdog
(workers/watchdog.py) rather than in beat, so that a beat that is down is seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from scheduler_app import dispatch, notifications, redbeat, validation
from scheduler_app.models import Alert, Job, Notification, Run

logger = logging.getLogger(__name__)

Kind = Alert.Kind
AUTO_HISTORY = 50  # recent successful runs whose p95 "auto" reads
AUTO_MIN_RUNS = 5  # with fewer, "auto" has no baseline yet and raises nothing
AUTO_FLOOR = 1.0  # seconds: "auto" never calls a run long below this
CHECK_LIMIT = 1000  # rows one check looks at; the next check takes the rest
RESOLVED = "resolved"  # the event that tells an alert's end


@dataclass(frozen=True)
class Finding:
    """A job's condition found by a check: what to open an alert with."""

    job: Job
    since: datetime
    detail: str
    run: Run | None = None


Findings = dict[int, Finding]  # by job id


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- decisions (plain values in, plain values out) ----------------------------------


def p95(values: Sequence[float]) -> float:
    """The nearest-rank 95th percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def longer_limit(
    setting: int | str | None, durations: Sequence[float], factor: float
) -> float | None:
    """Seconds a run of the job may run before it is long; None: no limit (not asked
    for, or "auto" without enough history to know what usual is)."""
    if setting is None:
        return None
    if setting != validation.AUTO:
        return float(setting)
    if len(durations) < AUTO_MIN_RUNS:
        return None
    return max(p95(durations) * factor, AUTO_FLOOR)


def lateness(run: Run) -> float:
    """Seconds between the run's slot and its start."""
    return (run.started_at - run.scheduled_for).total_seconds() if run.started_at else 0.0


# --- opening and resolving --------------------------------------------------------


def open_alert(
    kind: str, job: Job | None, since: datetime, detail: str, run: Run | None = None
) -> Alert | None:
    """Open an alert with its notification; None when one of its kind is open already
    for the job (or, two checkers racing, was opened a moment ago by the other)."""
    if Alert.objects.filter(kind=kind, job=job, resolved_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, job=job, run=run, since=since, detail=detail)
            if recipients(alert) != ([], []):
                notice = Notification.objects.create(alert=alert, event=kind, run=None)
                dispatch.notify(notice.id)
    except IntegrityError:
        return None
    logger.warning("alert %s opened: %s", kind, detail)
    return alert


def resolve(kind: str, job_ids: Iterable[int | None]) -> int:
    """Resolve the open alerts of ``kind`` of these jobs (None: the scheduler's own);
    an alert that was told as it began is told as it ends (event ``resolved``)."""
    ids = set(job_ids)
    scope = Q(job__isnull=True) if None in ids else Q(pk__in=[])
    if ids - {None}:
        scope |= Q(job_id__in=ids - {None})
    resolved = 0
    for alert in Alert.objects.filter(scope, kind=kind, resolved_at__isnull=True):
        with transaction.atomic():
            ended = Alert.objects.filter(id=alert.id, resolved_at__isnull=True)
            if not ended.update(resolved_at=timezone.now()):
                continue  # another checker resolved it a moment ago
            resolved += 1
            if alert.notifications.exists():
                notice = Notification.objects.create(alert=alert, event=RESOLVED)
                dispatch.notify(notice.id)
    return resolved


def open_job_ids(kind: str) -> set[int | None]:
    return set(
        Alert.objects.filter(kind=kind, resolved_at__isnull=True).values_list("job_id", flat=True)
    )


def _settle(kind: str, found: Findings, already: set[int | None]) -> None:
    """Open an alert for each job found, resolve the open ones (``already``) whose job is
    not. A finding of a job already told carries no detail: it only keeps it open."""
    for job_id, finding in found.items():
        if job_id not in already:
            open_alert(kind, finding.job, finding.since, finding.detail, finding.run)
    resolve(kind, already - set(found))


# --- late: judged as a run starts -------------------------------------------------


def judge_start(run: Run) -> None:
    """A scheduled run of a job with ``alert_if_late`` has started: late, or in time."""
    job = run.job
    if job.alert_if_late is None or run.trigger != Run.Trigger.SCHEDULE or run.parent_id:
        return
    late = lateness(run)
    try:
        if late > job.alert_if_late:
            detail = (
                f"run {run.id} of {job.name!r} started {late:.0f} s after its slot at "
                f"{iso(run.scheduled_for)} (alert_if_late {job.alert_if_late} s)."
            )
            open_alert(Kind.LATE, job, run.scheduled_for, detail, run)
        else:
            resolve(Kind.LATE, [job.id])
    except Exception:  # the run has started: an alert that cannot be written must not stop it
        logger.exception("alerts: could not judge the start of run %s", run.id)


# --- missed: a slot passed and no run started -------------------------------------


def check_missed(now: datetime) -> None:
    already = open_job_ids(Kind.MISSED)
    _settle(Kind.MISSED, missed_slots(now, already), already)


def missed_slots(now: datetime, already: set[int | None]) -> Findings:
    """Each watched job with a slot past its grace and no run started for it (the jobs
    ``already`` told of get no detail: working it out would read Redis for nothing)."""
    watched = Job.objects.filter(alert_if_missed__isnull=False, completed_at__isnull=True)
    found: Findings = {}
    # Not fired: beat advances next_run_at as the job's worker records the fire.
    for job in watched.filter(enabled=True, next_run_at__lt=now)[:CHECK_LIMIT]:
        if _past_grace(job, job.next_run_at, now):  # type: ignore[arg-type]
            detail = "" if job.id in already else _not_fired(job)
            found[job.id] = Finding(job, job.next_run_at, detail)  # type: ignore[arg-type]
    # Fired, but its run waits in a queue nobody takes.
    stuck = Run.objects.filter(
        status=Run.Status.QUEUED, trigger=Run.Trigger.SCHEDULE, parent__isnull=True,
        scheduled_for__lt=now, due_at__lte=now, job__in=watched,
    ).select_related("job").order_by("scheduled_for")  # fmt: skip
    for run in stuck[:CHECK_LIMIT]:
        if run.job_id not in found and _past_grace(run.job, run.scheduled_for, now):
            why = f"run {run.id} is still queued: no worker of queue {run.job.queue!r} took it"
            detail = _missed(run.job, run.scheduled_for, why)
            found[run.job_id] = Finding(run.job, run.scheduled_for, detail, run)
    # Paused: its slots pass with no fire at all.
    for job in watched.filter(enabled=False)[:CHECK_LIMIT]:
        if job.id in already:  # told already; open while the job stays paused
            found[job.id] = Finding(job, job.paused_at or now, "")
        elif (slot := _first_slot_since_pause(job)) and _past_grace(job, slot, now):
            why = f"the job is paused (since {iso(job.paused_at or slot)})"
            found[job.id] = Finding(job, slot, _missed(job, slot, why))
    return found


def _past_grace(job: Job, slot: datetime, now: datetime) -> bool:
    return slot + timedelta(seconds=job.alert_if_missed or 0) < now


def _missed(job: Job, slot: datetime, why: str) -> str:
    return (f"no run of {job.name!r} started within {job.alert_if_missed} s of its slot at "
            f"{iso(slot)}: {why}.")  # fmt: skip


def _not_fired(job: Job) -> str:
    slot = job.next_run_at
    assert slot is not None
    try:
        sent = redbeat.last_sent(job.id)
    except RedisError:
        sent = None
    if sent is not None and sent >= slot:
        why = (
            f"beat sends its fires to queue {job.queue!r} (the last at {iso(sent)}), "
            "but no worker takes them"
        )
    else:
        why = "beat has not sent it (is beat running?)"
    return _missed(job, slot, why)


def _first_slot_since_pause(job: Job) -> datetime | None:
    since = max(job.schedule_reference, job.paused_at or job.schedule_reference)
    return job.timing().next_run(since)


# --- long running ------------------------------------------------------------------


def check_long_running(now: datetime) -> None:
    _settle(Kind.LONG_RUNNING, long_runs(now), open_job_ids(Kind.LONG_RUNNING))


def long_runs(now: datetime) -> Findings:
    """Each watched job with a run going for longer than its limit."""
    running = Run.objects.filter(
        status=Run.Status.RUNNING, parent__isnull=True, job__alert_if_longer__isnull=False
    ).select_related("job").order_by("started_at")  # fmt: skip
    limits: dict[int, float | None] = {}
    found: Findings = {}
    for run in running[:CHECK_LIMIT]:
        job = run.job
        if job.id not in limits:
            limits[job.id] = longer_limit(job.alert_if_longer, recent_durations(job.id),
                                          settings.SCHEDULER_LONG_RUN_FACTOR)  # fmt: skip
        limit, started = limits[job.id], run.started_at or now
        elapsed = (now - started).total_seconds()
        if limit is not None and elapsed > limit and job.id not in found:
            how = (
                f"{job.alert_if_longer} s"
                if job.alert_if_longer != validation.AUTO
                else (f"auto: {settings.SCHEDULER_LONG_RUN_FACTOR:g} x its p95 duration")
            )
            detail = (f"run {run.id} of {job.name!r} has been running {elapsed:.0f} s, longer "
                      f"than {limit:.0f} s (alert_if_longer {how}).")  # fmt: skip
            found[job.id] = Finding(job, started, detail, run)
    return found


def recent_durations(job_id: int) -> list[float]:
    """The durations of the job's latest successful runs, newest first."""
    succeeded = Run.objects.filter(
        job_id=job_id, status=Run.Status.SUCCEEDED, parent__isnull=True, duration__isnull=False
    )
    return list(succeeded.order_by("-queued_at").values_list("duration", flat=True)[:AUTO_HISTORY])


# --- the scheduler itself ---------------------------------------------------------


def check_scheduler(now: datetime) -> None:
    """Open ``scheduler_down`` while beat is overdue, resolve it when beat keeps up."""
    try:
        overdue = beat_overdue(now, settings.SCHEDULER_DOWN_AFTER)
    except RedisError as exc:
        logger.warning("alerts: cannot read beat's schedule (%s); not judging beat", exc)
        return
    if overdue is None:
        resolve(Kind.SCHEDULER_DOWN, [None])
        return
    since, detail = overdue
    open_alert(Kind.SCHEDULER_DOWN, None, since, detail)


def beat_overdue(now: datetime, after: float) -> tuple[datetime, str] | None:
    """When beat should have sent something it has not, and what; None while it keeps up."""
    limit = now - timedelta(seconds=after)
    entries, first = redbeat.first_due()
    if first is not None:
        key, due = first
        if due < limit:
            return due, (f"beat is down: {key} was due at {iso(due)} and has not been sent for "
                         f"{(now - due).total_seconds():.0f} s.")  # fmt: skip
        return None
    if entries == 0:  # Redis lost the schedule, and no beat rebuilt it
        due_job = (
            Job.objects.filter(enabled=True, completed_at__isnull=True, next_run_at__lt=limit)
            .order_by("next_run_at")
            .first()
        )
        if due_job is not None:
            return due_job.next_run_at, (  # type: ignore[return-value]
                f"beat is down: Redis holds no schedule while job {due_job.name!r} was due "
                f"at {iso(due_job.next_run_at)} (beat rebuilds the schedule as it starts)."  # type: ignore[arg-type]
            )
    return None


def check_all(now: datetime | None = None) -> None:
    """Every check, each on its own: one failing does not stop the others."""
    now = now or timezone.now()
    for check in (check_scheduler, check_missed, check_long_running):
        try:
            check(now)
        except Exception:
            logger.exception("alerts: %s failed", check.__name__)


# --- telling ------------------------------------------------------------------------


def recipients(alert: Alert) -> tuple[list[str], list[str]]:
    """(e-mail addresses, webhook URLs): the job's, or the admins' for the scheduler's own."""
    if alert.job is None:
        hook = settings.SCHEDULER_ADMIN_WEBHOOK
        return list(settings.SCHEDULER_ADMIN_EMAILS), [hook] if hook else []
    return list(alert.job.notify_emails or []), list(alert.job.notify_webhooks or [])


def message(alert: Alert, event: str) -> dict[str, Any]:
    job = alert.job
    return {
        "event": event,
        "job": {"id": job.id, "name": job.name} if job else None,
        "alert": {
            "id": alert.id, "kind": alert.kind, "since": alert.since.isoformat(),
            "opened_at": alert.opened_at.isoformat(), "detail": alert.detail,
            "run": alert.run_id,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
    }  # fmt: skip


def send(alert: Alert, event: str) -> None:
    """Tell the alert's recipients that it opened (``event`` is its kind) or ended."""
    emails, webhooks = recipients(alert)
    about = alert.job.name if alert.job else "the scheduler"
    what = alert.kind.replace("_", " ") + (" resolved" if event == RESOLVED else "")
    subject = f"[{settings.SCHEDULER_NAME}] {about}: {what}"
    notifications.deliver(subject, message(alert, event), emails, webhooks)
