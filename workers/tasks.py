"""Thin Celery tasks, each calling plain functions: fire a job, run a run, the sweeps
beat sends (lost runs and messages, retention), notifications; and the worker's own
start (its watchdog, the alert checks) and warm shutdown.

The run tasks acknowledge late, so a message is not lost with a worker killed
mid-run; the run's unique identity and the conditional claim make a redelivered
message harmless.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutting_down,
)
from celery.utils import worker_direct
from django.conf import settings
from django.db import close_old_connections

from scheduler_app import alerts, dispatch, firing, identity, notifications, retention, services
from scheduler_app.models import Notification, Run
from workers import executors, fleet, orphans, presence, reporting, watchdog
from workers.executors import containment, sandbox, spawn, trash

logger = logging.getLogger(__name__)

DATABASE_RETRIES = 20  # of a fire or a claim while the database is away


@shared_task(name="workers.fire_job", bind=True, acks_late=True, reject_on_worker_lost=True)
def fire_job(
    self: Any, job_id: int, scheduled_for: str | None = None, sent_at: str | None = None
) -> None:
    """Sent by beat when a job is due: record the due fire times once, and run what is due.

    With the database away the fire is kept: the task is tried again later (recording
    a fire time twice makes one run)."""
    when = datetime.fromisoformat(scheduled_for) if scheduled_for else self.app.now()
    sent = datetime.fromisoformat(sent_at) if sent_at else self.app.now()
    try:
        runs = firing.fire_due(job_id, when, sent, worker=self.request.hostname)
        for extra in runs[1:]:  # catchup "all": the others go to any worker of the queue
            dispatch.enqueue(extra)
        first = services.start_run(runs[0], worker=self.request.hostname) if runs else None
    except reporting.DATABASE_AWAY as exc:
        raise _later(self, exc) from exc
    if first is not None:
        _execute(first)


@shared_task(name="workers.execute_run", bind=True, acks_late=True, reject_on_worker_lost=True)
def execute_run(self: Any, run_id: int) -> None:
    """Run a queued run (run now, a retry)."""
    _run(self, run_id)


def _later(task: Any, exc: Exception) -> Exception:
    """The task again, after 1, 2, 4 ... 60 s, for about a quarter of an hour."""
    countdown = min(2**task.request.retries, 60)
    return task.retry(exc=exc, countdown=countdown, max_retries=DATABASE_RETRIES)


def _run(task: Any, run_id: int) -> None:
    if fleet.DRAIN.draining and not _sent_to_me(task):
        services.pass_on(run_id)  # taken before the drain stopped the queue: given back
        return
    try:
        run = services.claim_run(run_id, worker=task.request.hostname)
    except reporting.DATABASE_AWAY as exc:
        raise _later(task, exc) from exc
    if run is not None:  # else claimed elsewhere, cancelled, skipped, waiting, a redelivery
        _execute(run)


def _sent_to_me(task: Any) -> bool:
    """Whether the message came by this worker's own queue (a child meant for it)."""
    return (task.request.delivery_info or {}).get("routing_key") == worker_direct(
        task.request.hostname
    ).name


def _execute(run: Run) -> None:
    """Run a run this worker has claimed, and record its end."""
    if run.job.targets and run.parent_id is None:
        services.target(run)
        return
    if run.job.fan_out and run.parent_id is None:
        services.fan_out(run)
        return
    try:
        outcome = executors.execute(run)
    except Exception as exc:
        logger.exception("run %s of job %s crashed in the executor", run.id, run.job_id)
        outcome = executors.Outcome(Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    # The outcome is kept until the database takes it (SCHEDULER_DB_RETRY_SECONDS), tried
    # twice per sweep of the reaper, so that the reaper never takes the run for dead first.
    reporting.persist(
        lambda: services.finish_run(run, outcome.status, exit_code=outcome.exit_code,
                                    output=reporting.storable(outcome.output),
                                    error=reporting.storable(outcome.error),
                                    result=reporting.storable(outcome.result)),
        within=settings.SCHEDULER_DB_RETRY_SECONDS, most=settings.REAP_EVERY / 2,
    )  # fmt: skip


@shared_task(name="workers.reap_lost", ignore_result=True)
def reap_lost() -> None:
    """Run by beat every REAP_EVERY seconds: runs whose heartbeat stopped are lost (and
    their nodes kill what they left running); queued runs and notifications whose
    message was lost are sent again."""
    lost = services.reap_silent(settings.SCHEDULER_HEARTBEAT_TIMEOUT)
    if lost:
        logger.warning("%d runs stopped sending heartbeats; marked lost", len(lost))
    for run in lost:
        dispatch.kill_orphan(run)
    requeued = services.requeue_stale(settings.SCHEDULER_REQUEUE_AFTER)
    if requeued:
        logger.warning("%d queued runs were never claimed; sent again", requeued)
    if resent := services.resend_notifications(settings.SCHEDULER_REQUEUE_AFTER):
        logger.warning("%d notifications were never sent; sent again", resent)


@shared_task(name="workers.kill_orphan", ignore_result=True)
def kill_orphan(marks: dict[str, str]) -> None:
    """Sent to the node of a lost run: kill the processes the run left running there
    (``marks``: the variables that name the run in their environment)."""
    if killed := orphans.kill_run_processes(marks):
        logger.warning("killed %d process groups left running by lost run %s", killed, marks)
    if killed := containment.kill_lost(marks):
        logger.warning("killed %d processes left in the cgroup of lost run %s", killed, marks)


@task_prerun.connect
@task_postrun.connect
def connections_by_age(**kwargs: Any) -> None:
    """Django's rule for database connections around each task, as around a request:
    closed after it, unless DB_CONN_MAX_AGE keeps them (checked before reuse, and closed
    after an error), which saves a connection per run."""
    close_old_connections()


@worker_ready.connect
def mark_lost_runs(sender: Any, **kwargs: Any) -> None:
    """A node starting up holds no runs: any it had running died with its last process."""
    node = sender.hostname
    if lost := services.lose_runs_of(node, f"worker {node} stopped while the run was going"):
        logger.warning("%d runs of %s were running when it stopped; marked lost", len(lost), node)


@worker_init.connect
def close_worker_files(sender: Any, **kwargs: Any) -> None:
    """Before any job runs: the job directories made, the worker's own files made
    unreadable to the user job code runs as (sandbox.harden), and the workspaces that
    a worker stopped before it could delete them removed."""
    sandbox.make_job_dirs()
    sandbox.harden()
    trash.sweep(Path(sandbox.workspaces()), sandbox.WORKSPACE_PREFIX)


@worker_ready.connect
def say_who_runs_job_code(sender: Any, **kwargs: Any) -> None:
    """Say in the log as whom job code runs and how its processes are contained, or why
    this worker refuses to run it (logging is set up by now, not at worker_init)."""
    try:
        who = identity.run_as()
    except identity.IdentityError as exc:
        logger.error("this worker refuses to run job code: %s", exc)
        return
    logger.info("job code runs as %s; a run's processes are contained by %s, started by %s",
                who.describe(), containment.mode(), spawn.mode())  # fmt: skip
    if identity.shares_worker_identity():
        logger.warning(
            "job code runs as this worker's own user %s: it can read what the worker reads "
            "(the database, var/). Start the worker as root to run it as SCHEDULER_RUN_AS.",
            who.name,
        )


@worker_ready.connect
def start_watchdog(sender: Any, **kwargs: Any) -> None:
    """The dead-man's switch, checked from inside the fleet (workers/watchdog.py)."""
    watchdog.start(settings.SCHEDULER_ALERT_CHECK_EVERY)


_presence: dict[str, threading.Event] = {}  # node -> the event that stops its writes


@worker_init.connect
def check_node_labels(sender: Any, **kwargs: Any) -> None:
    """A worker with labels that do not parse does not start, and says why."""
    fleet.labels()


@worker_ready.connect
def start_presence(sender: Any, **kwargs: Any) -> None:
    """Register this worker as a node of the fleet, and say in Redis that it is up, for
    GET /metrics and the node's state (workers/presence.py, workers/fleet.py)."""
    fleet.register(sender)
    _presence[sender.hostname] = presence.start(
        sender.hostname, settings.WORKER_PRESENCE_EVERY, fleet.after_presence
    )


@worker_shutting_down.connect
def stop_presence(sender: str, **kwargs: Any) -> None:
    presence.stop(sender, _presence.pop(sender, None))


@worker_shutting_down.connect
def stop_runs_after_grace(sender: str, how: str = "", **kwargs: Any) -> None:
    """A warm shutdown (SIGTERM) lets running jobs finish for SCHEDULER_SHUTDOWN_GRACE
    seconds; then they are recorded lost (and retried elsewhere if due) and killed, so a
    deploy never leaves a run ``running`` nor waits a day for one."""
    if how == "Warm":
        grace = settings.SCHEDULER_SHUTDOWN_GRACE
        timer = threading.Timer(grace, _abandon_runs, args=(sender, grace))
        timer.daemon = True
        timer.start()


def _abandon_runs(node: str, grace: int) -> None:
    reason = f"worker {node} shut down; the run was still going after {grace} s"
    for run in services.lose_runs_of(node, reason):
        orphans.kill_run_processes(run.identity_env())
        containment.kill_lost(run.identity_env())
        logger.warning("run %s was still going at shutdown: killed, marked lost", run.id)


@shared_task(name="workers.notify", acks_late=True, autoretry_for=(OSError,), max_retries=3)
def notify(notification_id: int) -> None:
    """Send a notification (e-mail, webhooks) unless it was sent already; retried if the
    mail server is away, and swept up again if this worker dies while sending."""
    notice = Notification.objects.select_related("run__job", "alert__job").filter(
        id=notification_id, sent_at__isnull=True
    )
    if (pending := notice.first()) is None:
        return
    if pending.alert is not None:
        alerts.send(pending.alert, pending.event)
    else:
        notifications.send(pending.run, pending.event)
    notifications.mark_sent(pending.id)


@shared_task(name="workers.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns what it is given: a task for trying the ``celery`` job kind."""
    return {"args": list(args), "kwargs": kwargs}


@shared_task(name="workers.prune_runs", ignore_result=True)
def prune_runs() -> int:
    """Run by beat every PRUNE_EVERY seconds: delete the finished runs past retention,
    and the alerts resolved as long ago as failed runs are kept."""
    report = retention.prune()
    if report.total:
        logger.info("retention deleted %d runs (%s)", report.total, report.describe())
    if alerts_deleted := retention.prune_alerts():
        logger.info("retention deleted %d resolved alerts", alerts_deleted)
    return report.total
