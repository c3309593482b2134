"""``python`` (inline code), ``script`` (a Python file) and ``pytest`` (a test run)."""

from __future__ import annotations

import re
import sys
from typing import Any

from scheduler_app.models import Run
from workers.executors.base import Outcome, PayloadError, allowed_path
from workers.executors.child import outcome_of, place_problem, run_child

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def _args(payload: dict[str, Any]) -> list[str]:
    args = payload.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PayloadError("'args' must be a list of strings.")
    return args


def _path(payload: dict[str, Any], example: str) -> str:
    path = payload.get("path")
    if not isinstance(path, str) or not path.strip():
        raise PayloadError(f"'path' is required, such as {example!r}.")
    return allowed_path(path)


class PythonExecutor:
    def validate(self, payload: Any) -> dict[str, Any]:
        code = payload.get("code") if isinstance(payload, dict) else None
        if not isinstance(code, str) or not code.strip():
            raise PayloadError("'code' is required: the Python source to run.")
        return {"code": code}

    def execute(self, run: Run) -> Outcome:
        if problem := place_problem(run.job):
            return Outcome(Run.Status.FAILED, error=problem)
        return outcome_of(run_child(run, [sys.executable, "-c", run.job.payload["code"]]), run.job)


class ScriptExecutor:
    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"path": "/srv/jobs/report.py"}.')
        return {"path": _path(payload, "/srv/jobs/report.py"), "args": _args(payload)}

    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        if problem := place_problem(run.job):
            return Outcome(Run.Status.FAILED, error=problem)
        argv = [sys.executable, payload["path"], *payload.get("args", [])]
        return outcome_of(run_child(run, argv), run.job)


class PytestExecutor:
    """A pytest run; the summary counts go into the run's ``result``."""

    def validate(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PayloadError('must be an object such as {"path": "/srv/app/tests/"}.')
        return {"path": _path(payload, "/srv/app/tests/"), "args": _args(payload)}

    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        if problem := place_problem(run.job):
            return Outcome(Run.Status.FAILED, error=problem)
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
