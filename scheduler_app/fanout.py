"""Fan-out: one run of a job on every live worker of its queue, and an aggregate on the parent.

The parent run is claimed like any run; instead of executing, it creates one
child run per node that consumes the job's queue (asked of the workers with a
broadcast), each sent to that node's own queue (Celery's ``worker_direct``).
When the last child ends, the parent ends: ``succeeded`` when at least
``quorum`` nodes succeeded (default: all of them), else ``failed``. Retries,
notifications and dependencies then follow from the parent.
"""

from __future__ import annotations

from django.db import transaction

from scheduler_app.models import Run

INSPECT_TIMEOUT = 1.0


def live_nodes(queue: str) -> list[str]:
    """The node names of the live workers that consume ``queue``."""
    from config.celery import app

    replies = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    return sorted(node for node, queues in replies.items()
                  if any(q.get("name") == queue for q in queues))  # fmt: skip


def spread(parent: Run) -> list[Run]:
    """Make and send the child runs of ``parent``; fail it when no node is there."""
    from scheduler_app import services

    nodes = live_nodes(parent.job.queue)
    if not nodes:
        services.finish_run(
            parent,
            Run.Status.FAILED,
            error=f"no live worker consumes the queue {parent.job.queue!r}.",
        )
        return []
    with transaction.atomic():
        children = [
            Run.objects.create(job=parent.job, trigger=parent.trigger, attempt=parent.attempt,
                               scheduled_for=parent.scheduled_for, parent=parent, node=node)
            for node in nodes
        ]  # fmt: skip
        Run.objects.filter(id=parent.id).update(
            worker=f"fan-out to {len(nodes)} nodes", result=_summary(parent, children)
        )
        for child in children:
            services.enqueue(child, node=child.node)
    return children


def child_finished(child: Run) -> None:
    """Called as a child ends (inside its transaction): end the parent after the last one."""
    from scheduler_app import services

    parent = Run.objects.select_for_update().select_related("job").get(id=child.parent_id)
    children = list(parent.children.order_by("node"))
    summary = _summary(parent, children)
    if not all(c.is_finished for c in children) or parent.is_finished:
        Run.objects.filter(id=parent.id).update(result=summary)
        return
    succeeded, quorum = summary["succeeded"], summary["quorum"]
    ok = succeeded >= quorum
    error = "" if ok else f"{succeeded} of {len(children)} nodes succeeded; quorum is {quorum}."
    services.finish_run(parent, Run.Status.SUCCEEDED if ok else Run.Status.FAILED,
                        exit_code=0 if ok else 1, error=error, result=summary)  # fmt: skip


def _summary(parent: Run, children: list[Run]) -> dict:
    return {
        "nodes": {c.node: c.status for c in children},
        "succeeded": sum(c.status == Run.Status.SUCCEEDED for c in children),
        "quorum": min(parent.job.quorum or len(children), len(children)),
    }
