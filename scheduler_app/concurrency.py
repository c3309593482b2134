"""Whether a run may start, by its job's ``concurrency_policy``, on any number of nodes.

The decision and the claim happen in one transaction holding the job's row lock
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken at BEGIN
by the IMMEDIATE transaction mode), so two workers on two machines can never
both see "nothing running" and both start.

- ``forbid``: a run that finds another running is ``skipped``, with the reason.
- ``allow``: up to ``max_concurrent`` at once (unlimited when unset); past it, ``skipped``.
- ``replace``: the running ones are cancelled (their nodes stop them within a
  second) and this one starts.
- ``queue_one``: this one waits (stays ``queued``) and starts when the running
  one ends; at most one waits, a further one is ``skipped``.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from scheduler_app.models import Job, Run

WAITING = "waiting: run {} is still running"


def claim_run(run_id: int, worker: str) -> Run | None:
    """Mark a queued run running on ``worker``; None when it must not start now.

    None also covers: another worker claimed it first, it was cancelled, or it
    was skipped or left waiting by the job's policy (its row says which).
    """
    with transaction.atomic():
        run = Run.objects.select_related("job").filter(id=run_id).first()
        if run is None or run.status != Run.Status.QUEUED:
            return None
        job = Job.objects.select_for_update().get(id=run.job_id)
        running = list(
            job.runs.filter(status=Run.Status.RUNNING, parent__isnull=True)
            .exclude(id=run_id)
            .order_by("id")
        )
        # A fan-out child belongs to its parent, which passed the policy already.
        if running and not run.parent_id and not _may_start(job, run, running):
            return None
        claimed = Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started_at=timezone.now(), worker=worker, error=""
        )
    return Run.objects.select_related("job").get(id=run_id) if claimed else None


def _may_start(job: Job, run: Run, running: list[Run]) -> bool:
    policy = job.concurrency_policy
    if policy == Job.ConcurrencyPolicy.REPLACE:
        from scheduler_app.services import cancel_run

        for other in running:
            cancel_run(other, reason=f"replaced by run {run.id}")
        return True
    if policy == Job.ConcurrencyPolicy.ALLOW:
        if job.max_concurrent is None or len(running) < job.max_concurrent:
            return True
        _skip(
            run, f"skipped: {len(running)} runs are running, max_concurrent is {job.max_concurrent}"
        )
        return False
    if policy == Job.ConcurrencyPolicy.QUEUE_ONE:
        waiting = job.runs.filter(status=Run.Status.QUEUED, error__startswith="waiting:")
        if not waiting.exclude(id=run.id).exists():
            Run.objects.filter(id=run.id).update(error=WAITING.format(running[0].id))
            return False
    _skip(run, f"skipped: run {running[0].id} is still running")
    return False


def _skip(run: Run, reason: str) -> None:
    Run.objects.filter(id=run.id, status=Run.Status.QUEUED).update(
        status=Run.Status.SKIPPED, error=reason, finished_at=timezone.now()
    )


def next_waiting(job_id: int) -> Run | None:
    """The run waiting under ``queue_one``, released to be started; None if none waits."""
    waiting = (
        Run.objects.filter(job_id=job_id, status=Run.Status.QUEUED, error__startswith="waiting:")
        .order_by("id")
        .first()
    )
    if waiting is None:
        return None
    Run.objects.filter(id=waiting.id).update(error="")
    return waiting
