"""The ``command`` kind: one shell string, run by ``payload.shell`` (default /bin/sh)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from django.conf import settings

from scheduler_app.models import Run
from workers.executors.base import Outcome, PayloadError
from workers.executors.process import run_process
from workers.reporting import heartbeat_for

DEFAULT_SHELL = "/bin/sh"
# The child sees these of the worker's environment, and nothing else but the
# job's own env: the worker's secrets (SECRET_KEY, DATABASE_URL) stay in the worker.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


class CommandExecutor:
    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"command": "echo hello"}.')
        command = payload.get("command")
        if not isinstance(command, str) or not command.strip():
            raise PayloadError("'command' is required: the shell command to run.")
        shell = payload.get("shell", DEFAULT_SHELL)
        if not isinstance(shell, str) or not os.path.isabs(shell):
            raise PayloadError(f"'shell' must be an absolute path such as /bin/sh; got {shell!r}.")
        return {"command": command, "shell": shell}

    def execute(self, run: Run) -> Outcome:
        job = run.job
        shell = job.payload.get("shell", DEFAULT_SHELL)
        if not shutil.which(shell):
            return Outcome(Run.Status.FAILED, error=f"shell {shell} is not on this worker.")
        cwd = job.working_dir or None
        if cwd and not os.path.isdir(cwd):
            return Outcome(Run.Status.FAILED, error=f"working_dir {cwd} does not exist here.")
        result = run_process(
            [shell, "-c", job.payload["command"]],
            env=child_env(run),
            cwd=cwd,
            timeout=job.timeout,
            output_limit=settings.SCHEDULER_OUTPUT_LIMIT,
            kill_grace=settings.SCHEDULER_KILL_GRACE,
            flush_every=settings.SCHEDULER_LOG_FLUSH_SECONDS,
            heartbeat=heartbeat_for(run.id),
        )
        if result.cancelled:
            return Outcome(Run.Status.CANCELLED, result.exit_code, result.output, "cancelled")
        if result.timed_out:
            error = f"timed out after {job.timeout} s; the process group was killed."
            return Outcome(Run.Status.TIMED_OUT, result.exit_code, result.output, error)
        status = Run.Status.SUCCEEDED if result.exit_code == 0 else Run.Status.FAILED
        error = "" if result.exit_code == 0 else f"exited with code {result.exit_code}."
        return Outcome(status, result.exit_code, result.output, error)


def child_env(run: Run) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({str(key): str(value) for key, value in (run.job.env or {}).items()})
    env["SCHEDULER_JOB_ID"] = str(run.job_id)
    env["SCHEDULER_RUN_ID"] = str(run.id)
    env["SCHEDULER_SCHEDULED_FOR"] = run.scheduled_for.isoformat()
    env["SCHEDULER_ATTEMPT"] = str(run.attempt)
    return env
