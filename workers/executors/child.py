"""Running a job's code in a child process: its environment, limits, secrets and outcome.

Every kind that runs user code (command, commands, script, python, pytest,
celery) goes through :func:`run_child`, so all of them get the same timeout,
cancel, memory and CPU limits, live output, secret masking, identity and
containment (workers/executors/sandbox.py, containment.py). It runs inside
``sandbox.workspace``, which :func:`workers.executors.execute` opens for the run.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings

from scheduler_app import identity
from scheduler_app.models import Job, Run
from scheduler_app.validation import MASK
from workers import reporting
from workers.executors import containment, sandbox, spawn
from workers.executors.base import Outcome
from workers.executors.process import Limits, ProcessResult, run_process


def env_values(env: dict[str, Any] | None) -> dict[str, str]:
    """The job's env as plain strings; a value may be {"value": ..., "secret": true}."""
    return {
        str(key): str(value["value"] if isinstance(value, dict) else value)
        for key, value in (env or {}).items()
    }


def secrets_of(job: Job) -> list[str]:
    """The values to mask: env values marked secret, longest first."""
    values = [
        str(value["value"])
        for value in (job.env or {}).values()
        if isinstance(value, dict) and value.get("secret") and value.get("value")
    ]
    return sorted(values, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def child_env(
    run: Run, who: identity.Identity, inherit: dict[str, str] | None = None
) -> dict[str, str]:
    """The documented variables and the job's env (sandbox.base_env); with ``inherit``
    (the celery kind) that instead, and not the job's env. The run's marks last: a job
    cannot name another run."""
    if inherit is not None:
        env = dict(inherit)
    else:
        env = sandbox.base_env(who)
        env.update(env_values(run.job.env))
    env.update(run.identity_env())
    env["SCHEDULER_ATTEMPT"] = str(run.attempt)
    env["SCHEDULER_NODE"] = run.node or run.worker
    return env


def run_child(
    run: Run,
    argv: list[str],
    timeout: float | None = None,
    inherit: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> ProcessResult:
    """Run ``argv`` for ``run`` with the job's limits; output is masked, live and final.

    The child runs as the run-as identity, from the job's working_dir or else the run's
    workspace. ``inherit`` is the celery kind's: the child runs as the worker, with the
    worker's environment (its settings), to run one of the app's own tasks.
    """
    job = run.job
    who = identity.worker() if inherit is not None else sandbox.job_identity()
    env = {**child_env(run, who, inherit), **(extra_env or {})}
    cwd = job.working_dir or (None if inherit is not None else str(sandbox.current_workspace()))
    secrets = secrets_of(job)
    pid: list[int] = []
    result = run_process(
        argv,
        env=env,
        cwd=cwd,
        timeout=job.timeout if timeout is None else timeout,
        output_limit=settings.SCHEDULER_OUTPUT_LIMIT,
        kill_grace=settings.SCHEDULER_KILL_GRACE,
        flush_every=settings.SCHEDULER_LOG_FLUSH_SECONDS,
        heartbeat=lambda output: reporting.save_output(run.id, mask(output, secrets), pid[0]),
        limits=Limits(job.max_memory_mb, job.max_cpu_seconds),
        on_start=pid.append,  # written with the first flush, not on its own
        identity=sandbox.child_identity(who),
        containment=containment.for_run(run.identity_env()),
        launcher=spawn.launcher(),
    )
    return ProcessResult(result.exit_code, mask(result.output, secrets), result.timed_out,
                         result.cancelled)  # fmt: skip


def place_problem(job: Job, who: identity.Identity) -> str:
    """Why the job cannot start on this node, or '' when it can: its working_dir, or the
    directory of its script or tests, missing or closed to the run-as identity."""
    places = [("working_dir", job.working_dir)]
    if job.kind in ("script", "pytest"):
        path = job.payload.get("path", "")
        places.append(("path", path if job.kind == "pytest" and os.path.isdir(path)
                       else os.path.dirname(path)))  # fmt: skip
    for field, place in places:
        if place and (why := sandbox.unreachable(place, who)):
            return (
                f"{field} {place} cannot be used: {why} Choose a {field} that {who.name} can "
                "enter, or give it access to that directory."
            )
    return ""


def outcome_of(result: ProcessResult, job: Job, result_data: dict | None = None) -> Outcome:
    """The run's status from how the child ended."""
    if result.cancelled:
        return Outcome(Run.Status.CANCELLED, result.exit_code, result.output, "cancelled",
                       result_data)  # fmt: skip
    if result.timed_out:
        error = f"timed out after {job.timeout} s; the process group was killed."
        return Outcome(Run.Status.TIMED_OUT, result.exit_code, result.output, error, result_data)
    if result.exit_code == 0:
        return Outcome(Run.Status.SUCCEEDED, 0, result.output, "", result_data)
    return Outcome(Run.Status.FAILED, result.exit_code, result.output,
                   describe_exit(result.exit_code, job, result.output), result_data)  # fmt: skip


def describe_exit(code: int | None, job: Job, output: str = "") -> str:
    if (failed := spawn.start_failure(code, output)) is not None:
        return f"the job's program did not start: {failed}"
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = {
            "SIGXCPU": f" (the CPU limit of {job.max_cpu_seconds} s)",
            "SIGKILL": " (killed: out of memory?)",
        }.get(name, "")
        return f"killed by {name}{hint}."
    return f"exited with code {code}."
