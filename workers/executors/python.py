"""``python`` (inline code), ``script`` (a Python file) and ``pytest`` (a test run)."""

from __future__ import annotations

import re

from scheduler_app import identity
from scheduler_app.models import Run
from workers.executors import sandbox
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child
from workers.executors.process import ProcessResult

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def run_python(run: Run, args: list[str]) -> ProcessResult:
    """``python args...`` with the Python the run-as identity can start (sandbox.python)."""
    interpreter = sandbox.python(identity.run_as())
    return run_child(run, [interpreter.path, *args], extra_env=interpreter.env)


class PythonExecutor:
    def execute(self, run: Run) -> Outcome:
        return outcome_of(run_python(run, ["-c", run.job.payload["code"]]), run.job)


class ScriptExecutor:
    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        return outcome_of(run_python(run, [payload["path"], *payload.get("args", [])]), run.job)


class PytestExecutor:
    """A pytest run; the summary counts go into the run's ``result``."""

    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        result = run_python(run, ["-m", "pytest", payload["path"], *payload.get("args", [])])
        return outcome_of(result, run.job, pytest_counts(result.output))


def pytest_counts(output: str) -> dict[str, int]:
    """{"passed": 3, "failed": 1, ...} from pytest's last summary line."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    summary = next((line for line in reversed(output.splitlines()) if _COUNTS.search(line)), "")
    for number, word in _COUNTS.findall(summary):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts
