"""State changes of jobs and runs, as plain functions that tasks, views and tests call.

Every change that more than one process may attempt at once is guarded in the
database: a unique constraint (a run is created once per job, time and attempt)
or a conditional UPDATE whose row count says who won.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from scheduler_app.concurrency import next_waiting
from scheduler_app.dependencies import trigger_dependents
from scheduler_app.models import Job, Run

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = 24 * 3600


def create_manual_run(job: Job) -> Run:
    """A run the user asked for now, whatever the schedule; queued on the job's queue."""
    with transaction.atomic():
        run = Run.objects.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now())
        enqueue(run)
    return run


def enqueue(run: Run, countdown: float = 0, node: str = "") -> None:
    """Send the run to a worker of its job's queue (or to one ``node``) after the commit."""
    from celery.utils import worker_direct

    from workers.tasks import execute_run

    queue = worker_direct(node) if node else run.job.queue
    priority = broker_priority(run.job.priority)
    transaction.on_commit(
        lambda: execute_run.apply_async(
            (run.id,), queue=queue, priority=priority, countdown=countdown
        )
    )


def finish_run(
    run: Run,
    status: str,
    *,
    exit_code: int | None = None,
    output: str = "",
    error: str = "",
    result: dict | None = None,
) -> Run:
    """Record how a run ended, keep the job's figures true, and start what follows it."""
    with transaction.atomic():
        ended = _record_end(run.id, status, exit_code, output, error, result)
        if ended is not None:
            _follow_up(ended)
    run.refresh_from_db()
    return run


def _record_end(
    run_id: int, status: str, exit_code: int | None, output: str, error: str,
    result: dict | None,
) -> Run | None:  # fmt: skip
    """Save the end of the run once; None when it had ended already or is gone."""
    now = timezone.now()
    current = Run.objects.select_for_update(of=("self",)).select_related("job")
    current = current.filter(id=run_id).first()
    if current is None:  # deleted with its job while it ran
        return None
    if current.status == Run.Status.CANCELLED:
        # A run cancelled while it ran stays cancelled, whatever the process said.
        status, error = Run.Status.CANCELLED, current.error or error
    elif current.is_finished:
        return None
    current.status, current.finished_at, current.exit_code = status, now, exit_code
    current.output, current.error, current.result = output, error, result
    if current.started_at:
        current.duration = (now - current.started_at).total_seconds()
    current.save(update_fields=["status", "finished_at", "duration", "exit_code", "output",
                                "error", "result"])  # fmt: skip
    return current


def _follow_up(run: Run) -> None:
    """What a run's end sets off: the job's figures, a retry, notifications, dependents,
    the job's completion, a run waiting under queue_one. A fan-out child instead
    reports to its parent, which does all that for the whole fan-out."""
    if run.parent_id:
        from scheduler_app.fanout import child_finished

        child_finished(run)
        return
    job = run.job
    failed = run.status in Run.RETRYABLE
    Job.objects.filter(id=job.id).update(
        last_run_at=run.started_at or run.finished_at,
        last_status=run.status,
        total_runs=F("total_runs") + 1,
        failed_runs=F("failed_runs") + (1 if failed else 0),
    )
    retry = _create_retry(run) if failed else None
    _notify(run, retrying=retry is not None)
    if retry is None:
        trigger_dependents(run)
        if run.trigger != Run.Trigger.MANUAL and job.can_end:
            complete_if_done(job.id)
    if job.concurrency_policy == Job.ConcurrencyPolicy.QUEUE_ONE and (
        waiting := next_waiting(job.id)
    ):
        enqueue(waiting)


def _create_retry(run: Run) -> Run | None:
    job = run.job
    if run.attempt > job.max_retries:
        return None
    retry = Run.objects.create_once(
        job=job, trigger=Run.Trigger.RETRY, scheduled_for=run.scheduled_for,
        attempt=run.attempt + 1,
    )  # fmt: skip
    if retry is not None:
        enqueue(retry, countdown=retry_delay(job, run.attempt))
    return retry


def _notify(run: Run, retrying: bool) -> None:
    """Queue the notifications the finished run calls for, after the commit."""
    from scheduler_app.notifications import events_for
    from workers.tasks import notify

    for event in events_for(run, retrying):
        transaction.on_commit(lambda event=event: notify.delay(run.id, event))


def complete_if_done(job_id: int) -> None:
    """A job whose schedule has no fire time left (a once job after its run, a past
    ``end_at``) is completed when its last run has ended."""
    job = Job.objects.filter(id=job_id).first()
    if job is None or not job.is_scheduled:
        return
    if job.get_schedule().next_after(job.schedule_reference) is not None:
        return
    if job.runs.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).exists():
        return
    job.completed_at = timezone.now()
    job.save()


def cancel_run(run: Run, reason: str = "cancelled by user") -> bool:
    """Stop a queued or running run; False when it had already ended.

    A queued run ends here; a running one is stopped by the node that runs it,
    which sees the status change at its next output flush (about a second).
    """
    ended = Run.objects.filter(id=run.id, status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, error=reason, finished_at=timezone.now()
    )
    stopping = Run.objects.filter(id=run.id, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, error=reason
    )
    for child in Run.objects.filter(parent_id=run.id):
        cancel_run(child, reason)
    return bool(ended or stopping)


def mark_lost(worker: str) -> int:
    """Runs a node had running when it (re)started died with its old process: they are lost."""
    return _lose(
        Run.objects.filter(worker=worker, status=Run.Status.RUNNING),
        f"worker {worker} stopped while the run was going",
    )


def reap_lost(live_workers: set[str], older_than: float = 60) -> int:
    """Runs left ``running`` by nodes that no longer answer are lost (and retried if due).

    Only runs started more than ``older_than`` seconds ago, so a node that has just
    started and not yet answered a ping is not taken for dead; fan-out parents are
    left to their children.
    """
    started_before = timezone.now() - timedelta(seconds=older_than)
    stale = (
        Run.objects.filter(status=Run.Status.RUNNING, started_at__lt=started_before)
        .exclude(worker__in=live_workers)
        .filter(children__isnull=True)
    )
    return _lose(stale, "its worker stopped answering while the run was going")


def _lose(runs: QuerySet[Run], reason: str) -> int:
    lost = 0
    for run in runs.select_related("job").distinct():
        finish_run(run, Run.Status.LOST, error=f"lost: {reason}")
        lost += 1
    return lost


def pause_job(job: Job) -> Job:
    job.enabled = False
    job.save()
    return job


def resume_job(job: Job) -> Job:
    job.enabled = True
    job.save()
    return job


def broker_priority(priority: int) -> int:
    """Our 9 is the most urgent; the Redis transport serves 0 first."""
    return 9 - priority


def retry_delay(job: Job, attempt: int, spread: float | None = None) -> float:
    """Seconds before the retry of ``attempt``: fixed, or with ``retry_backoff`` doubling
    each time, capped at a day, less up to 20 % jitter so retries of many runs spread out."""
    if not job.retry_backoff:
        return float(min(job.retry_delay, MAX_RETRY_DELAY))
    delay = min(job.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
    spread = random.random() if spread is None else spread
    return delay * (1 - 0.2 * spread)
