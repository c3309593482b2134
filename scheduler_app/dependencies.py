"""Jobs that run when others finish: ``depends_on: [{"job": id, "on": "success"}]``.

Each upstream run that finishes the named way (``success``; ``failure``, which
includes timed out and lost; or ``always``) starts one run of the dependent job
with trigger ``dependency``, for the same scheduled time, so a redelivered
finish cannot start it twice. A cycle is refused when dependencies are set.
"""

from __future__ import annotations

from typing import Any

from scheduler_app.models import Job, JobDependency, Run, cycle_problem


class DependencyError(ValueError):
    pass


def set_dependencies(job: Job, specs: list[dict[str, Any]]) -> None:
    """Replace the job's upstreams; DependencyError for itself or a cycle."""
    if problem := cycle_problem(job.id, [spec["job"].id for spec in specs]):
        raise DependencyError(problem)
    job.dependencies.all().delete()
    JobDependency.objects.bulk_create(
        JobDependency(job=job, upstream=spec["job"], on=spec.get("on", JobDependency.On.SUCCESS))
        for spec in specs
    )


def matches(on: str, status: str) -> bool:
    """Whether an upstream run that ended with ``status`` sets off a dependency ``on``."""
    if on == JobDependency.On.ALWAYS:
        return status == Run.Status.SUCCEEDED or status in Run.FAILURES
    if on == JobDependency.On.SUCCESS:
        return status == Run.Status.SUCCEEDED
    return status in Run.FAILURES


def to_start(dependencies: list[JobDependency], status: str) -> list[Job]:
    """The dependent jobs an upstream run that ended with ``status`` starts."""
    return [
        dependency.job
        for dependency in dependencies
        if dependency.job.enabled
        and not dependency.job.completed_at
        and matches(dependency.on, status)
    ]
