"""The orchestrator: what happens to runs and jobs, applied in one visible order.

The policy modules decide from the data they are given (:mod:`.concurrency`,
:mod:`.retries`, :mod:`.dependencies`, :mod:`.fanout`, :mod:`.notifications`);
this module gathers that data, asks them, and applies their decisions through
:mod:`.runs` (the only writer of a run's status) and :mod:`.dispatch` (the only
sender of tasks). Tasks, views, the admin and tests call these functions.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.db.models.functions import Coalesce
from django.utils import timezone

from scheduler_app import (
    alerts,
    audit,
    concurrency,
    dependencies,
    dispatch,
    fanout,
    nodes,
    notifications,
    redbeat,
    retries,
    runs,
    targeting,
)
from scheduler_app.models import Job, JobDependency, Node, Notification, Run

logger = logging.getLogger(__name__)

REAP_BATCH = 1000  # runs looked at by one sweep; the next sweep takes the rest
MAX_NOTIFICATION_SENDS = 5
MANUAL_RUN_TRIES = 3


def create_manual_run(job: Job) -> Run:
    """A run the user asked for now, whatever the schedule; queued on the job's queue."""
    with transaction.atomic():
        for _ in range(MANUAL_RUN_TRIES):  # two clicks in one microsecond: one a moment later
            run = runs.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now())
            if run is not None:
                audit.record(audit.Action.RUN, run)
                dispatch.enqueue(run)
                return run
    raise RuntimeError(f"could not make a manual run of job {job.id}")


# --- starting -------------------------------------------------------------------


def pass_on(run_id: int, delay: float = 1.0) -> None:
    """Send a queued run back to its queue, for another worker: this one is draining."""
    run = Run.objects.select_related("job").filter(id=run_id, status=Run.Status.QUEUED).first()
    if run is not None:
        dispatch.enqueue(run, countdown=delay, node=run.node)


def claim_run(run_id: int, worker: str) -> Run | None:
    """Start a queued run on ``worker`` if its job's concurrency policy admits it.

    A run that no policy need judge (see :func:`runs.claim_at_once`) is claimed by one
    conditional UPDATE, then read with its job. Any other is judged and claimed in one
    transaction holding the job's row lock (``SELECT ... FOR UPDATE`` on PostgreSQL;
    SQLite's write lock, taken at BEGIN by the IMMEDIATE transaction mode), so two
    workers on two machines never both see "nothing running" and both start. None when
    it must not start now: claimed elsewhere, cancelled, skipped or left waiting (its
    row says which).

    The run is read once, with its job (and whether any job depends on it, so its end
    asks only when one does), and kept: what the claim wrote is set on it in memory.
    """
    run = runs.claim_at_once(run_id, worker, alone=_writes_one_at_a_time())
    if run is None:
        run = _claim_locked(run_id, worker)
    if run is not None:
        _started(run)
    return run


def _claim_locked(run_id: int, worker: str) -> Run | None:
    with transaction.atomic():
        queued = Run.objects.filter(id=run_id, status=Run.Status.QUEUED).select_related("job")
        if connection.features.has_select_for_update_of:
            queued = queued.select_for_update(of=("job",))
        queued = queued.annotate(
            job_has_dependents=Exists(JobDependency.objects.filter(upstream=OuterRef("job_id")))
        )
        run = next(iter(queued.order_by()[:1]), None)  # no ORDER BY: one row by its key
        if run is None or not _claim(run, worker):
            return None
    return run


def _writes_one_at_a_time() -> bool:
    """SQLite: a write statement holds the database's only write lock from its start,
    so a check in its WHERE holds when it writes, as under the job's row lock."""
    return connection.vendor == "sqlite"


def start_run(run: Run, worker: str) -> Run | None:
    """:func:`claim_run` for a run the caller holds with its job (just made by a fire):
    nothing is read again. One the fire made running already is only judged late or not.
    On SQLite, one no other run of its job keeps waiting is claimed in one statement."""
    if run.status != Run.Status.RUNNING and not (
        _writes_one_at_a_time() and runs.claim(run, worker, alone=True)
    ):
        with transaction.atomic():
            if connection.features.has_select_for_update:  # SQLite: BEGIN IMMEDIATE locked
                list(Job.objects.select_for_update().filter(id=run.job_id).values_list("id"))
            if not _claim(run, worker):
                return None
    _started(run)
    return run


def _claim(run: Run, worker: str) -> bool:
    """With the job's lock held: claim ``run`` if the policy admits it, in one statement
    while no other run of its job runs (any policy starts a run then)."""
    if run.parent_id is not None or admits_any(run.job):
        # A fan-out child belongs to its parent, which passed the policy already.
        return runs.claim(run, worker)
    return runs.claim(run, worker, alone=True) or (_admitted(run) and runs.claim(run, worker))


def admits_any(job: Job) -> bool:
    """Whether the job's policy starts a run whatever else runs (nothing to check)."""
    return job.concurrency_policy == Job.ConcurrencyPolicy.ALLOW and job.max_concurrent is None


def _started(run: Run) -> None:
    if run.job.alert_if_late is not None:
        alerts.judge_start(run)


def _admitted(run: Run) -> bool:
    """The policy's decision, applied, when another run of the job is running."""
    job = run.job
    running = runs.running_of(job.id)
    another_waits = (
        bool(running)
        and job.concurrency_policy == Job.ConcurrencyPolicy.QUEUE_ONE
        and job.runs.filter(status=Run.Status.WAITING, parent__isnull=True)
        .exclude(id=run.id)
        .exists()
    )
    admission = concurrency.admit(
        job.concurrency_policy, job.max_concurrent, running, another_waits
    )
    for other in admission.replace:
        _stop(other, reason=f"replaced by run {run.id}")
    if admission.skip:
        runs.skip(run.id, admission.skip)
    elif admission.wait:
        runs.wait(run.id, admission.wait)
    return admission.start


def fan_out(parent: Run) -> list[Run]:
    """Make and send one child run of ``parent`` per live node of its job's queue;
    fail the parent when no node is there."""
    job = parent.job
    nodes = dispatch.live_nodes(job.queue)
    if not nodes:
        error = f"no live worker consumes the queue {job.queue!r}."
        finish_run(parent, Run.Status.FAILED, error=error)
        return []
    with transaction.atomic():
        children = [
            child
            for node in nodes
            if (child := runs.create(job=job, trigger=parent.trigger, attempt=parent.attempt,
                                     scheduled_for=parent.scheduled_for, parent=parent, node=node))
        ]  # fmt: skip
        progress = fanout.summary({c.node: c.status for c in children}, job.quorum)
        runs.note(parent.id, worker=f"fan-out to {len(nodes)} nodes", result=progress)
        for child in children:
            dispatch.enqueue(child, node=child.node)
    return children


def target(parent: Run) -> list[Run]:
    """Make the children of a targeted run, one per node its targets name (``each``) or
    one on the least busy online node (``any``), and send those due now (targeting.py).
    A parent left with no child to wait for ends now."""
    job = parent.job
    candidates = _candidates(job.targets or {})
    if job.target_mode == Job.TargetMode.ANY:
        chosen = targeting.pick_any(candidates)
        plan = [targeting.Child(chosen.hostname, True)] if chosen else []
    else:
        plan = targeting.plan_each(candidates, job.max_parallel)
    if not plan:
        finish_run(parent, Run.Status.FAILED, error=targeting.none_online(candidates))
        return []
    with transaction.atomic():
        children = [child for step in plan if (child := _target_child(parent, step))]
        statuses = dict(parent.children.values_list("node", "status"))
        progress = fanout.summary(statuses, job.quorum)
        runs.note(parent.id, worker=f"targets: {len(children)} nodes", result=progress)
        if all(status in Run.FINISHED for status in statuses.values()):
            _judge(Run.objects.select_for_update().select_related("job").get(id=parent.id))
    return children


def _candidates(targets: dict) -> list[targeting.Candidate]:
    found = nodes.resolve(targets)
    states = nodes.seen(found)
    busy = dict(
        Run.objects.filter(worker__in=[n.hostname for n in found], status=Run.Status.RUNNING)
        .order_by().values("worker").annotate(n=Count("id")).values_list("worker", "n")
    )  # fmt: skip
    return [targeting.Candidate(n.name, n.hostname, states[n.id].state, busy.get(n.hostname, 0))
            for n in found]  # fmt: skip


def _target_child(parent: Run, step: targeting.Child) -> Run | None:
    child = runs.create(job=parent.job, trigger=parent.trigger, attempt=parent.attempt,
                        scheduled_for=parent.scheduled_for, parent=parent,
                        node=step.hostname)  # fmt: skip
    if child is None:
        return None
    if step.skip_reason:
        runs.skip(child.id, step.skip_reason)
    elif not step.send:
        runs.wait(child.id, f"waiting: max_parallel={parent.job.max_parallel}")
    else:
        dispatch.enqueue(child, node=child.node)
    return child


# --- ending ---------------------------------------------------------------------


def finish_run(
    run: Run,
    status: str,
    *,
    exit_code: int | None = None,
    output: str = "",
    error: str = "",
    result: dict | None = None,
) -> Run:
    """Record how a run ended, then apply what follows, once, in one transaction.

    ``run`` is the worker's copy (with its job): what is written is set on it too,
    and read back only when the run had been cancelled or had ended already (a
    rollback leaves the copy ahead of the row: the next try writes it again).

    An end that sets off nothing but the job's figures (most runs) is written with
    them in one go (:func:`runs.finish_counted`)."""
    if _ends_alone(run, status) and runs.finish_counted(
        run, status, exit_code=exit_code, output=output, error=error, result=result
    ):
        return run
    with transaction.atomic():
        ended = runs.finish(run, status, exit_code=exit_code, output=output, error=error,
                            result=result)  # fmt: skip
        if ended:
            _follow_up(run)
    if ended != status:  # ended already, or cancelled (its reason is in the row)
        run.refresh_from_db()
    return run


def _follow_up(run: Run) -> None:
    """What a run's end sets off, in this order: for a fan-out child, its parent's
    verdict (the parent does the rest); else the job's figures, a retry,
    notifications, then (no retry coming) dependents and the job's completion,
    and last a run waiting under queue_one."""
    if run.parent_id:
        _child_ended(run)
        return
    job = run.job
    _count(run)
    retry = retries.plan(job, run.status, run.attempt)
    if retry is not None:
        _start_retry(run, retry)
    _notify(run, retrying=retry is not None)
    if retry is None:
        _start_dependents(run)
        if run.trigger != Run.Trigger.MANUAL and job.can_end:
            complete_if_done(job.id)
    if job.concurrency_policy == Job.ConcurrencyPolicy.QUEUE_ONE:
        _release_waiting(job.id)


def _ends_alone(run: Run, status: str) -> bool:
    """Whether :func:`_follow_up` would only count the run in its job's figures, as the
    worker's copy of the run and its job (read at the claim) tell, as _follow_up itself
    decides: no parent to judge, no retry, no one to notify, no dependent job, no
    completion to check, no waiting run to release."""
    job = run.job
    return (
        run.parent_id is None
        and run.started_at is not None
        and retries.plan(job, status, run.attempt) is None
        and not notifications.has_recipients(job)
        and not _may_have_dependents(run)
        and (run.trigger == Run.Trigger.MANUAL or not job.can_end)
        and job.concurrency_policy != Job.ConcurrencyPolicy.QUEUE_ONE
    )


def _count(run: Run) -> None:
    Job.objects.filter(id=run.job_id).update(
        last_run_at=run.started_at or run.finished_at,
        last_status=run.status,
        total_runs=F("total_runs") + 1,
        failed_runs=F("failed_runs") + (1 if run.status in Run.FAILURES else 0),
    )


def _start_retry(run: Run, retry: retries.Retry) -> None:
    due = timezone.now() + timedelta(seconds=retry.countdown)
    again = runs.create(job=run.job, trigger=Run.Trigger.RETRY, scheduled_for=run.scheduled_for,
                        attempt=retry.attempt, due_at=due)  # fmt: skip
    if again is not None:
        dispatch.enqueue(again, countdown=retry.countdown)


def _notify(run: Run, retrying: bool) -> None:
    if not notifications.has_recipients(run.job):
        return  # most jobs: no query for the previous run on their hot path
    previous = notifications.previous_status(run) if run.status == Run.Status.SUCCEEDED else None
    events = notifications.events_for(run.status, previous, retrying)
    for event in notifications.wanted(run.job, events):
        if notice := notifications.record(run, event):
            dispatch.notify(notice.id)


def _start_dependents(run: Run) -> None:
    """One run of each job waiting on ``run``'s job ending this way, for the same time.
    Not asked when the claim found no job depending on it (``job_has_dependents``)."""
    if not _may_have_dependents(run):
        return
    waiting = list(run.job.dependents.select_related("job"))
    for job in dependencies.to_start(waiting, run.status):
        child = runs.create(job=job, trigger=Run.Trigger.DEPENDENCY,
                            scheduled_for=run.scheduled_for)  # fmt: skip
        if child is not None:
            dispatch.enqueue(child)


def _may_have_dependents(run: Run) -> bool:
    """False when the read that gave the worker its run found no dependent job."""
    known = getattr(run, "job_has_dependents", getattr(run.job, "has_dependents", None))
    return known is not False


def _release_waiting(job_id: int) -> None:
    waiting = Run.objects.filter(job_id=job_id, status=Run.Status.WAITING, parent__isnull=True)
    waiting = waiting.order_by("id").first()
    if waiting is not None and runs.release(waiting.id):
        dispatch.enqueue(waiting)


def _child_ended(child: Run) -> None:
    """Send a targeted parent's next children (or skip them after a failure), then end
    the parent after its last child, by the children's verdict."""
    parent = Run.objects.select_for_update().select_related("job").get(id=child.parent_id)
    if parent.job.targets and not parent.is_finished:
        _send_next(parent, child)
    _judge(parent)


def _send_next(parent: Run, ended: Run) -> None:
    job = parent.job
    # In the order they were made: the targets' order (nodes.resolve).
    statuses = list(parent.children.order_by("id").values_list("id", "status"))
    step = targeting.after_child(ended, statuses, job.max_parallel, job.halt_on_failure)
    for run_id in step.skip:
        runs.halt(run_id, step.reason)
    for child in Run.objects.filter(id__in=step.send).order_by("id"):
        if runs.release(child.id):
            child.job = job
            dispatch.enqueue(child, node=child.node)


def _judge(parent: Run) -> None:
    """The parent's progress, or its end once every child ended (its row locked)."""
    statuses = dict(parent.children.values_list("node", "status"))
    verdict = fanout.verdict(statuses, parent.job.quorum)
    if verdict.status is None or parent.is_finished:
        runs.note(parent.id, result=verdict.summary)
        return
    ok = verdict.status == Run.Status.SUCCEEDED
    finish_run(parent, verdict.status, exit_code=0 if ok else 1, error=verdict.error,
               result=verdict.summary)  # fmt: skip


def complete_if_done(job_id: int) -> None:
    """A job whose schedule has no fire time left (a once job after its run, a past
    ``end_at``) is completed when its last run has ended."""
    job = Job.objects.filter(id=job_id).first()
    if job is None or not job.is_scheduled:
        return
    if job.get_schedule().next_after(job.schedule_reference) is not None:
        return
    if job.runs.filter(status__in=Run.PENDING).exists():
        return
    if Job.objects.filter(id=job_id, completed_at__isnull=True).update(
        completed_at=timezone.now(), next_run_at=None, revision=F("revision") + 1
    ):
        redbeat.sync_after_commit(job_id)


def cancel_run(run: Run | int, reason: str = "cancelled by user") -> bool:
    """Stop a queued, waiting or running run, and its fan-out children; False when it
    had already ended. A running one is stopped by the node that runs it, which sees
    the change at its next output flush (about a second). Recorded in the audit log."""
    run = run if isinstance(run, Run) else Run.objects.select_related("job").get(id=run)
    with transaction.atomic():
        cancelled = _stop(run.id, reason)
        if cancelled:
            change = {"field": "status", "before": run.status, "after": Run.Status.CANCELLED}
            audit.record(audit.Action.CANCEL, run, [change])
    return cancelled


def _stop(run_id: int, reason: str) -> bool:
    cancelled = runs.cancel(run_id, reason)
    for child in Run.objects.filter(parent_id=run_id).values_list("id", flat=True):
        runs.cancel(child, reason)
    return cancelled


# --- lost runs ------------------------------------------------------------------


def lose_runs_of(worker: str, reason: str) -> list[Run]:
    """The runs ``worker`` has running are lost (and retried elsewhere if due): it
    restarted, so they died with its old process, or it is shutting down."""
    running = Run.objects.filter(worker=worker, status=Run.Status.RUNNING)
    return [run for run in running.select_related("job") if _lose_one(run, reason)]


def reap_silent(timeout: float) -> list[Run]:
    """Runs whose heartbeat stopped more than ``timeout`` seconds ago, and that a sweep
    before this one found silent too, are lost (and retried if the job has retries
    left), whatever their node says: the worker or its pool process died, or a job
    killed it. A run silent for the first time is only suspected, so runs that could
    not beat because the database was away for everyone get a sweep's time to beat
    again. Fan-out parents are left to their children. Returns the lost runs, so their
    nodes, if alive, can kill what they left running."""
    silent_since = timezone.now() - timedelta(seconds=timeout)
    silent = (
        Run.objects.filter(status=Run.Status.RUNNING, children__isnull=True)
        .annotate(last_sign=Coalesce("heartbeat_at", "started_at"))
        .filter(last_sign__lt=silent_since)
        .select_related("job")
    )
    confirmed = silent.filter(suspected_at__isnull=False, last_sign__lt=F("suspected_at"))
    lost = []
    for run in confirmed[:REAP_BATCH]:
        last = run.last_sign.isoformat(timespec="seconds")  # type: ignore[attr-defined]
        if _lose_one(run, f"no heartbeat since {last} from {run.worker or 'its worker'}"):
            lost.append(run)
    new = silent.exclude(suspected_at__isnull=False, last_sign__lt=F("suspected_at"))
    runs.suspect(list(new.values_list("id", flat=True)[:REAP_BATCH]))
    return lost


def requeue_stale(after: float) -> int:
    """Send again the queued runs due more than ``after`` seconds ago that no worker has
    claimed: their message was lost (a Redis flushed or restarted without persistence).
    The Run row is its own outbox; the conditional claim makes a copy harmless."""
    stale_before = timezone.now() - timedelta(seconds=after)
    sent = 0
    stale = Run.objects.filter(status=Run.Status.QUEUED, due_at__lt=stale_before)
    for run in stale.select_related("job").order_by("due_at")[:REAP_BATCH]:
        with transaction.atomic():
            if run.parent_id and run.node and _skip_if_node_offline(run):
                continue
            if runs.requeue(run.id, stale_before):
                dispatch.enqueue(run, node=run.node)
                sent += 1
    return sent


def _skip_if_node_offline(child: Run) -> bool:
    """A child sent to a registered node that went offline before taking it is skipped
    (its parent then judges), rather than sent again to a queue nobody reads."""
    node = Node.objects.filter(hostname=child.node).first()
    if node is None or nodes.seen([node])[node.id].state != nodes.OFFLINE:
        return False
    reason = f"skipped: node {node.name} went offline before it started the run"
    if runs.skip(child.id, reason):
        _follow_up(Run.objects.select_related("job").get(id=child.id))
    return True


def resend_notifications(after: float) -> int:
    """Send again the notifications due more than ``after`` seconds ago and not sent
    (their message lost, or their worker killed while sending), at most
    MAX_NOTIFICATION_SENDS times each."""
    stale_before = timezone.now() - timedelta(seconds=after)
    pending = Notification.objects.filter(
        sent_at__isnull=True, due_at__lt=stale_before, sends__lt=MAX_NOTIFICATION_SENDS
    )
    sent = 0
    for notice_id in pending.order_by("due_at").values_list("id", flat=True)[:REAP_BATCH]:
        again = Notification.objects.filter(
            id=notice_id, sent_at__isnull=True, due_at__lt=stale_before
        ).update(due_at=timezone.now(), sends=F("sends") + 1)
        if again:
            dispatch.notify(notice_id)
            sent += 1
    return sent


def _lose_one(run: Run, reason: str) -> bool:
    with transaction.atomic():
        if not runs.lose(run.id, reason):
            return False
        _follow_up(Run.objects.select_related("job").get(id=run.id))
    return True


# --- jobs -----------------------------------------------------------------------


def set_enabled(job: Job, enabled: bool) -> Job:
    """Pause or resume: only ``enabled`` and what follows from it are written, so a
    row read a moment ago cannot undo a run's figures saved meanwhile."""
    with audit.acting(audit.Action.RESUME if enabled else audit.Action.PAUSE, job):
        job.enabled = enabled
        job.save(update_fields=["enabled"])
    return job
