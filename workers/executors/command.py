"""``command``: one shell string; ``commands``: several, in order."""

from __future__ import annotations

import shutil
import time
from typing import Any

from scheduler_app.models import Run
from scheduler_app.payloads import DEFAULT_SHELL
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child


class CommandExecutor:
    def execute(self, run: Run) -> Outcome:
        job = run.job
        shell = job.payload.get("shell", DEFAULT_SHELL)
        if not shutil.which(shell):
            return Outcome(Run.Status.FAILED, error=f"shell {shell} is not on this worker.")
        return outcome_of(run_child(run, [shell, "-c", job.payload["command"]]), job)


class CommandsExecutor:
    """Commands in order; each step's exit code and output are kept in ``result``."""

    def execute(self, run: Run) -> Outcome:
        job = run.job
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
