"""Running a job's code in a child process: its environment, limits, secrets and outcome.

Every kind that runs user code (command, commands, script, python, pytest,
celery) goes through :func:`run_child`, so all of them get the same timeout,
cancel, memory and CPU limits, live output and secret masking.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings

from scheduler_app.models import Job, Run
from scheduler_app.validation import MASK
from workers import reporting
from workers.executors.base import Outcome
from workers.executors.process import Limits, ProcessResult, run_process

# The child sees these of the worker's environment, and nothing else but the
# job's own env: the worker's secrets (SECRET_KEY, DATABASE_URL) stay in the worker.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


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


def child_env(run: Run, inherit: dict[str, str] | None = None) -> dict[str, str]:
    env = inherit or {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
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
) -> ProcessResult:
    """Run ``argv`` for ``run`` with the job's limits; output is masked, live and final.

    ``inherit`` replaces the small inherited environment (the celery kind needs
    the worker's settings to run the app's own task).
    """
    job = run.job
    secrets = secrets_of(job)
    pid: list[int] = []
    result = run_process(
        argv,
        env=child_env(run, inherit),
        cwd=job.working_dir or None,
        timeout=job.timeout if timeout is None else timeout,
        output_limit=settings.SCHEDULER_OUTPUT_LIMIT,
        kill_grace=settings.SCHEDULER_KILL_GRACE,
        flush_every=settings.SCHEDULER_LOG_FLUSH_SECONDS,
        heartbeat=lambda output: reporting.save_output(run.id, mask(output, secrets), pid[0]),
        limits=Limits(job.max_memory_mb, job.max_cpu_seconds),
        on_start=pid.append,  # written with the first flush, not on its own
    )
    return ProcessResult(result.exit_code, mask(result.output, secrets), result.timed_out,
                         result.cancelled)  # fmt: skip


def place_problem(job: Job) -> str:
    """Why the job cannot start on this node, or '' when it can."""
    if job.working_dir and not os.path.isdir(job.working_dir):
        return f"working_dir {job.working_dir} does not exist on this worker."
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
                   describe_exit(result.exit_code, job), result_data)  # fmt: skip


def describe_exit(code: int | None, job: Job) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = {
            "SIGXCPU": f" (the CPU limit of {job.max_cpu_seconds} s)",
            "SIGKILL": " (killed: out of memory?)",
        }.get(name, "")
        return f"killed by {name}{hint}."
    return f"exited with code {code}."
