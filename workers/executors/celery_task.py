"""``celery``: a registered Celery task by name, run in a child process; its return value recorded.

The task runs in ``python -m workers.run_task`` (a child with the worker's
settings), not in the worker process, so a crash, a timeout or a cancel takes
only the child. Its return value comes back as JSON on a marked line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from scheduler_app.models import Run
from workers.executors.base import Outcome, PayloadError
from workers.executors.child import outcome_of, place_problem, run_child

RESULT_MARK = "__SCHEDULER_TASK_RESULT__ "
INTERNAL = ("workers.fire_job", "workers.execute_run", "workers.notify", "workers.reap_lost")


def registered_tasks() -> set[str]:
    from config.celery import app

    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.") and name not in INTERNAL}


class CeleryTaskExecutor:
    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"task": "app.tasks.cleanup"}.')
        task, args, kwargs = payload.get("task"), payload.get("args", []), payload.get("kwargs", {})
        known = registered_tasks()
        if task not in known:
            raise PayloadError(
                f"'task' must be a registered Celery task; {task!r} is not. "
                f"Known: {', '.join(sorted(known)) or 'none'}."
            )
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise PayloadError("'args' must be a list and 'kwargs' an object.")
        return {"task": task, "args": args, "kwargs": kwargs}

    def execute(self, run: Run) -> Outcome:
        if problem := place_problem(run.job):
            return Outcome(Run.Status.FAILED, error=problem)
        call = json.dumps({k: run.job.payload[k] for k in ("task", "args", "kwargs")})
        result = run_child(run, [sys.executable, "-m", "workers.run_task", call],
                           inherit=dict(os.environ))  # fmt: skip
        lines = result.output.splitlines()
        marked = [line for line in lines if line.startswith(RESULT_MARK)]
        value = json.loads(marked[-1][len(RESULT_MARK) :]) if marked else None
        output = "\n".join(line for line in lines if not line.startswith(RESULT_MARK))
        cleaned = result.__class__(result.exit_code, output, result.timed_out, result.cancelled)
        return outcome_of(cleaned, run.job, {"return_value": value} if marked else None)
