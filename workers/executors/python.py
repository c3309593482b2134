"""``python`` (inline code), ``script`` (a Python file) and ``pytest`` (a test run)."""

from __future__ import annotations

import re
import sys

from scheduler_app.models import Run
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


class PythonExecutor:
    def execute(self, run: Run) -> Outcome:
        return outcome_of(run_child(run, [sys.executable, "-c", run.job.payload["code"]]), run.job)


class ScriptExecutor:
    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        argv = [sys.executable, payload["path"], *payload.get("args", [])]
        return outcome_of(run_child(run, argv), run.job)


class PytestExecutor:
    """A pytest run; the summary counts go into the run's ``result``."""

    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        argv = [sys.executable, "-m", "pytest", payload["path"], *payload.get("args", [])]
        result = run_child(run, argv)
        return outcome_of(result, run.job, pytest_counts(result.output))


def pytest_counts(output: str) -> dict[str, int]:
    """{"passed": 3, "failed": 1, ...} from pytest's last summary line."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    summary = next((line for line in reversed(output.splitlines()) if _COUNTS.search(line)), "")
    for number, word in _COUNTS.findall(summary):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts
