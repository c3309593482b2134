"""``python`` (inline code), ``script`` (a Python file) and ``pytest`` (a test run)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

from scheduler_app.models import Run
from workers.executors import sandbox
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child
from workers.executors.process import ProcessResult

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def run_python(run: Run, args: list[str]) -> ProcessResult:
    """``python args...`` with the Python the run-as identity can start (sandbox.python)."""
    interpreter = sandbox.python(sandbox.job_identity())
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
        args = [*config_args(payload["path"]), payload["path"], *payload.get("args", [])]
        result = run_python(run, ["-m", "pytest", *args])
        return outcome_of(result, run.job, pytest_counts(result.output))


# pytest's configuration files, in the order it looks for them, and what marks one as its.
CONFIG_FILES = (("pytest.ini", ""), (".pytest.ini", ""), ("pyproject.toml", "[tool.pytest"),
                ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]"))  # fmt: skip


def config_args(path: str) -> list[str]:
    """Where pytest finds its configuration and conftest files: from the tests upward, but
    not past the directory jobs may use (SCHEDULER_ALLOWED_DIRS) that holds them. Left
    to itself pytest walks up to / and stops at the scheduler's own pyproject.toml, which
    the run-as user cannot read (and whose options are not the job's)."""
    start = Path(path) if Path(path).is_dir() else Path(path).parent
    tops = [Path(d) for d in settings.SCHEDULER_ALLOWED_DIRS]
    top = next((d for d in tops if d == start or d in start.parents), start)
    for directory in (start, *start.parents):
        for name, mark in CONFIG_FILES:
            config = directory / name
            if config.is_file() and (not mark or mark in config.read_text(errors="replace")):
                return ["-c", str(config), "--rootdir", str(directory), "--confcutdir", str(top)]
        if directory == top:
            break
    return ["-c", os.devnull, "--rootdir", str(top), "--confcutdir", str(top)]


def pytest_counts(output: str) -> dict[str, int]:
    """{"passed": 3, "failed": 1, ...} from pytest's last summary line."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    summary = next((line for line in reversed(output.splitlines()) if _COUNTS.search(line)), "")
    for number, word in _COUNTS.findall(summary):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts
