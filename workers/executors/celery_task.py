"""``celery``: a registered Celery task by name, run in a child process; its return value recorded.

The task runs in ``python -m workers.run_task`` (a child with the worker's
settings), not in the worker process, so a crash, a timeout or a cancel takes
only the child. Its return value comes back as JSON on a marked line.
"""

from __future__ import annotations

import json
import os
import sys

from scheduler_app.models import Run
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child
from workers.run_task import RESULT_MARK


class CeleryTaskExecutor:
    def execute(self, run: Run) -> Outcome:
        call = json.dumps({k: run.job.payload[k] for k in ("task", "args", "kwargs")})
        result = run_child(run, [sys.executable, "-m", "workers.run_task", call],
                           inherit=dict(os.environ))  # fmt: skip
        lines = result.output.splitlines()
        marked = [line for line in lines if line.startswith(RESULT_MARK)]
        value = json.loads(marked[-1][len(RESULT_MARK) :]) if marked else None
        output = "\n".join(line for line in lines if not line.startswith(RESULT_MARK))
        cleaned = result.__class__(result.exit_code, output, result.timed_out, result.cancelled)
        return outcome_of(cleaned, run.job, {"return_value": value} if marked else None)
