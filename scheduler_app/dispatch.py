"""Sending work to the workers: the one place that sends a Celery task, by its name.

Sending by name keeps ``scheduler_app`` free of imports of ``workers``. Every send
waits for the commit of the transaction that made the run, so a worker never
looks for a row that is not there yet, nor gets one that was rolled back.
"""

from __future__ import annotations

from celery.utils import worker_direct
from django.db import transaction

from config.celery import app
from scheduler_app.models import Run

EXECUTE_RUN = "workers.execute_run"
FIRE_JOB = "workers.fire_job"
NOTIFY = "workers.notify"
KILL_ORPHAN = "workers.kill_orphan"
INSPECT_TIMEOUT = 1.0


def broker_priority(priority: int) -> int:
    """Our 9 is the most urgent; the Redis transport serves 0 first."""
    return 9 - priority


def enqueue(run: Run, countdown: float = 0, node: str = "") -> None:
    """Send the run to a worker of its job's queue (or to one ``node``) after the commit."""
    queue = worker_direct(node) if node else run.job.queue
    options = {"queue": queue, "priority": broker_priority(run.job.priority)}
    transaction.on_commit(
        lambda: app.send_task(EXECUTE_RUN, (run.id,), countdown=countdown, **options)
    )


def notify(notification_id: int) -> None:
    """Send the notification (an outbox row) after the commit."""
    transaction.on_commit(lambda: app.send_task(NOTIFY, (notification_id,)))


def kill_orphan(run: Run) -> None:
    """Ask the node of a lost run to kill the processes the run left there. A node that
    is gone finds the message if it comes back under its name, and finds nothing."""
    if run.worker:
        app.send_task(KILL_ORPHAN, (run.identity_env(),), queue=worker_direct(run.worker))


def live_nodes(queue: str) -> list[str]:
    """The node names of the live workers that consume ``queue`` (asked by broadcast)."""
    replies = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    return sorted(node for node, queues in replies.items()
                  if any(q.get("name") == queue for q in queues))  # fmt: skip
