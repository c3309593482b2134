"""What a fire time becomes: runs, skips by policy, and missed times.

Beat sends ``fire_job(job, scheduled_for, sent_at)`` for the first fire time it
found due. Every fire time from it up to ``sent_at`` is due now; the ones more
than ``misfire_grace`` seconds old were missed (beat, Redis or the job was
down or paused) and ``catchup`` decides how many of those still run: ``skip``
none, ``once`` the latest (the default), ``all`` each, up to a bound. Missed
times that do not run are recorded as ``missed`` runs, so none is silently lost.
Each time that runs then meets the job's window, calendar and concurrency
policy, which may record it as ``skipped`` (with the reason) or shift it.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from scheduler_app import dispatch, runs, schedules, services
from scheduler_app.models import Job, Run

CATCHUP_ALL_LIMIT = 100  # runs, for catchup "all"
MISSED_RECORD_LIMIT = 100  # missed times recorded one by one; the rest are counted
DUE_SCAN_LIMIT = 10_000  # fire times looked at for one late fire


def fire_due(
    job_id: int, scheduled_for: datetime, sent_at: datetime | None = None, worker: str = ""
) -> list[Run]:
    """Record every due fire time of the job; return the runs to start now.

    The first of them is made already running on ``worker`` (the caller, which runs it)
    when the job's policy admits any number of runs at once: create and claim in one
    statement. The others, and every run of the other policies, are queued."""
    job = runs.read_job(job_id)
    if job is None or not job.is_scheduled:
        return []
    sent_at = sent_at or timezone.now()
    timing = job.timing()
    due = due_times(timing.schedule, scheduled_for, sent_at)
    to_run, missed = split_missed(due, sent_at, job.misfire_grace, job.catchup)
    _record_missed(job, missed)
    claim_on = worker if worker and services.admits_any(job) else ""
    starting: list[Run] = []
    for moment in to_run:
        if run := _run_for(job, timing.decide(moment), "" if starting else claim_on):
            starting.append(run)
    _advance_schedule(job, due[-1])
    if not starting:
        services.complete_if_done(job.id)
    return starting


def due_times(schedule: schedules.Schedule, first: datetime, until: datetime) -> list[datetime]:
    """``first`` and every later fire time up to ``until``."""
    times = [first]
    while len(times) < DUE_SCAN_LIMIT:
        fire = schedule.next_after(times[-1])
        if fire is None or fire > until:
            break
        times.append(fire)
    return times


def split_missed(
    due: list[datetime], sent_at: datetime, grace: int, catchup: str
) -> tuple[list[datetime], list[datetime]]:
    """(times that run, times missed), by the job's ``misfire_grace`` and ``catchup``."""
    late = [t for t in due if (sent_at - t).total_seconds() > grace]
    on_time = [t for t in due if t not in late]
    if catchup == Job.Catchup.SKIP:
        run_late: list[datetime] = []
    elif catchup == Job.Catchup.ONCE:
        run_late = [] if on_time else late[-1:]
    else:
        run_late = late[-CATCHUP_ALL_LIMIT:]
    missed = [t for t in late if t not in run_late]
    return sorted(run_late + on_time), missed


def missed_reason(job: Job, moment: datetime) -> str:
    while_paused = (
        job.paused_at
        and job.paused_at <= moment
        and (job.resumed_at is None or job.resumed_at < job.paused_at or moment <= job.resumed_at)
    )
    cause = "the job was paused" if while_paused else "the scheduler was not running"
    return f"missed: {cause} at this time (catchup={job.catchup})"


def _record_missed(job: Job, missed: list[datetime]) -> None:
    recorded, rest = missed[:MISSED_RECORD_LIMIT], missed[MISSED_RECORD_LIMIT:]
    for index, moment in enumerate(recorded):
        last = index == len(recorded) - 1
        result = None
        if last and rest:
            result = {"also_missed": len(rest), "until": rest[-1].isoformat()}
        runs.record_missed(job, moment, missed_reason(job, moment), result)


def _run_for(job: Job, decision: schedules.Decision, claim_on: str) -> Run | None:
    """The run a decision makes (running on ``claim_on``, if given, when it starts now);
    returned only when it should start now."""
    if decision.run_at is None:
        runs.record_skipped(job, decision.fire_time, f"skipped: {decision.skip_reason}")
        return None
    fields = {"job": job, "trigger": Run.Trigger.SCHEDULE, "scheduled_for": decision.run_at,
              "due_at": max(decision.run_at, timezone.now())}  # fmt: skip
    if decision.run_at != decision.fire_time:
        # Shifted by the calendar to a later day: start it then.
        if run := runs.create(**fields):
            delay = (decision.run_at - timezone.now()).total_seconds()
            dispatch.enqueue(run, countdown=max(delay, 0))
        return None
    return runs.create_running(claim_on, **fields) if claim_on else runs.create(**fields)


def _advance_schedule(job: Job, fired_for: datetime) -> None:
    """Record the latest fire time; only ever forward, whatever order fires arrive in."""
    job.last_fired_for = fired_for
    later = Q(last_fired_for__isnull=True) | Q(last_fired_for__lt=fired_for)
    Job.objects.filter(later, id=job.id).update(
        last_fired_for=fired_for, next_run_at=job.compute_next_run_at()
    )
