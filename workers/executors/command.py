"""``command``: one shell string; ``commands``: several, in order."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from scheduler_app.models import Run
from workers.executors.base import Outcome, PayloadError
from workers.executors.child import outcome_of, place_problem, run_child

DEFAULT_SHELL = "/bin/sh"


def _shell(payload: dict[str, Any]) -> str:
    shell = payload.get("shell", DEFAULT_SHELL)
    if not isinstance(shell, str) or not os.path.isabs(shell):
        raise PayloadError(f"'shell' must be an absolute path such as /bin/sh; got {shell!r}.")
    return shell


class CommandExecutor:
    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"command": "echo hello"}.')
        command = payload.get("command")
        if not isinstance(command, str) or not command.strip():
            raise PayloadError("'command' is required: the shell command to run.")
        return {"command": command, "shell": _shell(payload)}

    def execute(self, run: Run) -> Outcome:
        job = run.job
        shell = job.payload.get("shell", DEFAULT_SHELL)
        problem = place_problem(job) or (
            "" if shutil.which(shell) else f"shell {shell} is not on this worker."
        )
        if problem:
            return Outcome(Run.Status.FAILED, error=problem)
        return outcome_of(run_child(run, [shell, "-c", job.payload["command"]]), job)


class CommandsExecutor:
    """Commands in order; each step's exit code and output are kept in ``result``."""

    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"commands": ["make", "make test"]}.')
        commands = payload.get("commands")
        if (
            not isinstance(commands, list)
            or not commands
            or not all(isinstance(c, str) and c.strip() for c in commands)
        ):
            raise PayloadError("'commands' must be a non-empty list of shell commands.")
        stop = payload.get("stop_on_failure", True)
        if not isinstance(stop, bool):
            raise PayloadError("'stop_on_failure' must be true or false.")
        return {"commands": commands, "stop_on_failure": stop, "shell": _shell(payload)}

    def execute(self, run: Run) -> Outcome:
        job = run.job
        if problem := place_problem(job):
            return Outcome(Run.Status.FAILED, error=problem)
        deadline = time.monotonic() + job.timeout if job.timeout else None
        steps: list[dict[str, Any]] = []
        outputs: list[str] = []
        last = None
        for command in job.payload["commands"]:
            remaining = max(deadline - time.monotonic(), 0.001) if deadline else None
            started = time.monotonic()
            result = run_child(run, [job.payload["shell"], "-c", command], timeout=remaining)
            steps.append(
                {
                    "command": command,
                    "exit_code": result.exit_code,
                    "duration": round(time.monotonic() - started, 3),
                }
            )
            outputs.append(f"$ {command}\n{result.output}")
            last = result
            if result.cancelled or result.timed_out:
                break
            if result.exit_code != 0 and job.payload["stop_on_failure"]:
                break
        failed = [s for s in steps if s["exit_code"] != 0]
        assert last is not None
        outcome = outcome_of(last, job, {"steps": steps})
        output = "".join(outputs)
        if outcome.status == Run.Status.SUCCEEDED and failed:
            error = f"{len(failed)} of {len(steps)} steps failed."
            return Outcome(
                Run.Status.FAILED, failed[-1]["exit_code"], output, error, {"steps": steps}
            )
        return Outcome(outcome.status, outcome.exit_code, output, outcome.error, {"steps": steps})
