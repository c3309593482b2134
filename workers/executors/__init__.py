"""One executor per job kind; ``for_kind`` is the registry the worker uses.

What a payload must hold is checked before it is saved (scheduler_app.payloads).
"""

from __future__ import annotations

from scheduler_app import identity
from scheduler_app.models import Run
from scheduler_app.payloads import CODE_KINDS, PayloadError
from workers.executors import sandbox
from workers.executors.base import Executor, Outcome
from workers.executors.celery_task import CeleryTaskExecutor
from workers.executors.child import outcome_of, place_problem, run_child
from workers.executors.command import CommandExecutor, CommandsExecutor
from workers.executors.files import FileExecutor
from workers.executors.http import HttpExecutor
from workers.executors.python import PytestExecutor, PythonExecutor, ScriptExecutor
from workers.executors.software import SoftwareExecutor

_EXECUTORS: dict[str, Executor] = {
    "command": CommandExecutor(),
    "commands": CommandsExecutor(),
    "script": ScriptExecutor(),
    "python": PythonExecutor(),
    "pytest": PytestExecutor(),
    "http": HttpExecutor(),
    "celery": CeleryTaskExecutor(),
    "file": FileExecutor(),
    "software": SoftwareExecutor(),
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

    Code runs as the run-as identity, in a workspace of the run's own (sandbox.py); none
    of it starts where the worker refuses to run code (root without SCHEDULER_ALLOW_ROOT)
    or where the job cannot run (its working_dir missing or closed to that identity).
    """
    job = run.job
    if job.kind not in CODE_KINDS and not job.condition:
        return for_kind(job.kind).execute(run)
    try:
        who = identity.run_as()
    except identity.IdentityError as exc:
        return Outcome(Run.Status.FAILED, error=f"this worker refuses to run job code: {exc}")
    if problem := place_problem(job, who):
        return Outcome(Run.Status.FAILED, error=problem)
    with sandbox.workspace(run, who):
        if job.condition and (skipped := _check_condition(run)):
            return skipped
        return for_kind(job.kind).execute(run)


def _check_condition(run: Run) -> Outcome | None:
    """The outcome when the condition stops the run (skipped, cancelled); None to go on."""
    job = run.job
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
    return None


__all__ = ["SUPPORTED_KINDS", "Executor", "Outcome", "PayloadError", "execute", "for_kind"]
