"""Jobs that run when others finish: ``depends_on: [{"job": id, "on": "success"}]``.

Each upstream run that finishes the named way (``success``; ``failure``, which
includes timed out and lost; or ``always``) starts one run of the dependent job
with trigger ``dependency``, for the same scheduled time, so a redelivered
finish cannot start it twice. A cycle is refused when dependencies are set.
"""

from __future__ import annotations

import logging
from typing import Any

from scheduler_app.models import Job, JobDependency, Run

logger = logging.getLogger(__name__)


class DependencyError(ValueError):
    pass


def find_cycle(job: Job, upstream_ids: list[int]) -> list[str] | None:
    """The names along a cycle that these upstreams would close through ``job``, or None."""
    edges: dict[int, list[int]] = {}
    for downstream, upstream in JobDependency.objects.values_list("job_id", "upstream_id"):
        edges.setdefault(downstream, []).append(upstream)
    edges[job.id] = list(upstream_ids)
    path: list[int] = []

    def visit(node: int, seen: set[int]) -> bool:
        if node == job.id and path:
            return True
        if node in seen:
            return False
        seen.add(node)
        path.append(node)
        if any(visit(up, seen) for up in edges.get(node, [])):
            return True
        path.pop()
        return False

    if not visit(job.id, set()):
        return None
    names = dict(Job.objects.filter(id__in=path).values_list("id", "name"))
    return [names[i] for i in [*path, job.id]]


def set_dependencies(job: Job, specs: list[dict[str, Any]]) -> None:
    upstream_ids = [spec["job"].id for spec in specs]
    if job.id in upstream_ids:
        raise DependencyError("a job cannot depend on itself.")
    if cycle := find_cycle(job, upstream_ids):
        raise DependencyError("this would make a cycle: " + " -> ".join(reversed(cycle)) + ".")
    job.dependencies.all().delete()
    JobDependency.objects.bulk_create(
        JobDependency(job=job, upstream=spec["job"], on=spec.get("on", JobDependency.On.SUCCESS))
        for spec in specs
    )


def matches(on: str, status: str) -> bool:
    if on == JobDependency.On.ALWAYS:
        return status == Run.Status.SUCCEEDED or status in Run.RETRYABLE
    if on == JobDependency.On.SUCCESS:
        return status == Run.Status.SUCCEEDED
    return status in Run.RETRYABLE


def trigger_dependents(run: Run) -> list[Run]:
    """Start the jobs waiting on ``run``'s job, when it finished the way they wait for."""
    from scheduler_app.services import enqueue

    started = []
    for dependency in run.job.dependents.select_related("job"):
        job = dependency.job
        if not job.enabled or job.completed_at or not matches(dependency.on, run.status):
            continue
        child = Run.objects.create_once(
            job=job, trigger=Run.Trigger.DEPENDENCY, scheduled_for=run.scheduled_for
        )
        if child is None:
            logger.info("job %s already ran for %s", job.id, run.scheduled_for)
            continue
        enqueue(child)
        started.append(child)
    return started
