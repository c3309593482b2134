"""One executor per job kind; ``for_kind`` is the registry the worker uses.

What a payload must hold is checked before it is saved (scheduler_app.payloads).
"""

from __future__ import annotations

from scheduler_app.models import Run
from scheduler_app.payloads import PayloadError
from workers.executors.base import Executor, Outcome
from workers.executors.celery_task import CeleryTaskExecutor
from workers.executors.child import outcome_of, place_problem, run_child
from workers.executors.command import CommandExecutor, CommandsExecutor
from workers.executors.http import HttpExecutor
from workers.executors.python import PytestExecutor, PythonExecutor, ScriptExecutor

_EXECUTORS: dict[str, Executor] = {
    "command": CommandExecutor(),
    "commands": CommandsExecutor(),
    "script": ScriptExecutor(),
    "python": PythonExecutor(),
    "pytest": PytestExecutor(),
    "http": HttpExecutor(),
    "celery": CeleryTaskExecutor(),
}

SUPPORTED_KINDS = tuple(_EXECUTORS)
CONDITION_TIMEOUT = 300


def for_kind(kind: str) -> Executor:
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise PayloadError(
            f"kind {kind!r} is not supported; supported kinds: {', '.join(SUPPORTED_KINDS)}."
        ) from None


def execute(run: Run) -> Outcome:
    """Run the job of ``run``: its condition first, if it has one, then its kind's executor.

    Neither starts where the job cannot run (its working_dir missing on this node).
    """
    job = run.job
    if problem := place_problem(job):
        return Outcome(Run.Status.FAILED, error=problem)
    if job.condition:
        check = run_child(
            run,
            ["/bin/sh", "-c", job.condition],
            timeout=min(job.timeout or CONDITION_TIMEOUT, CONDITION_TIMEOUT),
        )
        if check.cancelled:
            return outcome_of(check, job)
        if check.timed_out or check.exit_code != 0:
            how = "timed out" if check.timed_out else f"exited with code {check.exit_code}"
            return Outcome(
                Run.Status.SKIPPED, check.exit_code, check.output, f"skipped: the condition {how}."
            )
    return for_kind(job.kind).execute(run)


__all__ = ["SUPPORTED_KINDS", "Executor", "Outcome", "PayloadError", "execute", "for_kind"]
