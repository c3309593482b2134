"""``software``: catalogue packages brought to a version on the node, idempotently.

For each package, in order: its ``check`` command (as every job's child: the run-as
identity, the job's limits, live output) prints the version installed; at the wanted
version it is left alone (``unchanged``); else its ``install`` command runs (or
``pip install --upgrade --target SCHEDULER_SOFTWARE_DIR <pip>==<version>``, by
workers/executors/pip_install.py), then ``check``
again, which must now print the wanted version. Each child has in its environment
SCHEDULER_SOFTWARE_NAME, SCHEDULER_SOFTWARE_VERSION (the wanted one) and
SCHEDULER_SOFTWARE_DIR. A failed package fails the run with the installer's output;
``stop_on_failure`` leaves the packages after it alone.
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from scheduler_app import identity
from scheduler_app.models import Job, Run, Software
from scheduler_app.payloads import DEFAULT_SHELL, PayloadError, allowed_path
from workers.executors import pip_install
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child
from workers.executors.process import ProcessResult
from workers.executors.sandbox import job_identity, python

PIP_PROGRAM = inspect.getsource(pip_install)
ERROR_TAIL = 2000  # characters of a failed installer's output in the run's error


@dataclass
class Progress:
    """What the run has done so far: per-package reports, output, the last child."""

    job: Job
    deadline: float | None
    reports: list[dict[str, Any]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    stopped: ProcessResult | None = None  # a child that timed out or was cancelled

    def remaining(self) -> float | None:
        return max(self.deadline - time.monotonic(), 0.001) if self.deadline else None


def software_dir(who: identity.Identity) -> str:
    """SCHEDULER_SOFTWARE_DIR, which must lie in SCHEDULER_ALLOWED_DIRS; made (empty, for
    the run-as identity, which then installs in it) when it is missing."""
    if not settings.SCHEDULER_SOFTWARE_DIR:
        raise PayloadError("SCHEDULER_SOFTWARE_DIR is not set on this worker.")
    path = allowed_path(settings.SCHEDULER_SOFTWARE_DIR)
    try:
        os.mkdir(path, 0o755)
        os.chown(path, who.uid, who.gid, follow_symlinks=False)
    except FileExistsError:  # made before (or by another run just now)
        return path
    except OSError as exc:
        raise PayloadError(f"SCHEDULER_SOFTWARE_DIR {path} cannot be made: {exc}.") from exc
    return path


def version_of(result: ProcessResult) -> str | None:
    """The version a check printed (its last non-empty line); None when it failed."""
    if result.exit_code != 0:
        return None
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def installer(entry: Software, wanted: str, env: dict[str, str]) -> list[str]:
    if entry.install.strip():
        return [DEFAULT_SHELL, "-c", entry.install]
    interpreter = python(job_identity())
    env.update(interpreter.env)
    return [interpreter.path, "-c", PIP_PROGRAM, env["SCHEDULER_SOFTWARE_DIR"], entry.pip, wanted]


class SoftwareExecutor:
    def execute(self, run: Run) -> Outcome:
        job = run.job
        try:
            directory = software_dir(job_identity())
        except PayloadError as exc:
            return Outcome(Run.Status.FAILED, error=str(exc))
        wanted = job.payload["packages"]
        entries = Software.objects.in_bulk([p["software"] for p in wanted])
        progress = Progress(job, time.monotonic() + job.timeout if job.timeout else None)
        for package in wanted:
            entry = entries.get(package["software"])
            report = self._one(run, progress, entry, package, directory)
            progress.reports.append(report)
            if progress.stopped or (report["action"] == "failed"
                                    and job.payload["stop_on_failure"]):  # fmt: skip
                break
        return self._outcome(progress)

    def _one(self, run: Run, progress: Progress, entry: Software | None, package: dict[str, Any],
             directory: str) -> dict[str, Any]:  # fmt: skip
        if entry is None:
            return {"software": package["software"], "action": "failed",
                    "error": f"software {package['software']} no longer exists."}  # fmt: skip
        wanted = package.get("version") or entry.version
        report: dict[str, Any] = {"software": entry.pk, "name": entry.name, "version": wanted}
        env = {"SCHEDULER_SOFTWARE_NAME": entry.name, "SCHEDULER_SOFTWARE_VERSION": wanted,
               "SCHEDULER_SOFTWARE_DIR": directory}  # fmt: skip
        report["before"] = before = self._check(run, progress, entry, env)
        if progress.stopped:
            return {**report, "action": "failed", "error": "stopped during the check."}
        if before == wanted:
            progress.output.append(f"{entry.name}: {wanted} already installed, unchanged.\n")
            return {**report, "after": before, "action": "unchanged"}
        argv = installer(entry, wanted, env)
        install = self._child(run, progress, f"install {entry.name} {wanted}", argv, env)
        if install.exit_code != 0 or progress.stopped:
            tail = install.output[-ERROR_TAIL:]
            return {**report, "after": before, "action": "failed",
                    "error": f"the install {_ended(install)}:\n{tail}"}  # fmt: skip
        report["after"] = after = self._check(run, progress, entry, env)
        if after != wanted:
            error = f"after the install, check prints {after!r}, not {wanted!r}."
            return {**report, "action": "failed", "error": error}
        progress.output.append(f"{entry.name}: {before or 'not installed'} -> {after}.\n")
        return {**report, "action": "installed"}

    def _check(
        self, run: Run, progress: Progress, entry: Software, env: dict[str, str]
    ) -> str | None:
        argv = [DEFAULT_SHELL, "-c", entry.check_command]
        return version_of(self._child(run, progress, f"check {entry.name}", argv, env))

    def _child(self, run: Run, progress: Progress, title: str, argv: list[str],
               env: dict[str, str]) -> ProcessResult:  # fmt: skip
        result = run_child(run, argv, timeout=progress.remaining(), extra_env=env)
        progress.output.append(f"$ {title}\n{result.output}")
        if result.timed_out or result.cancelled:
            progress.stopped = result
        return result

    def _outcome(self, progress: Progress) -> Outcome:
        result = {"packages": progress.reports}
        output = "".join(progress.output)
        if progress.stopped is not None:
            stopped = outcome_of(progress.stopped, progress.job)
            return Outcome(stopped.status, stopped.exit_code, output, stopped.error, result)
        failed = [r for r in progress.reports if r["action"] == "failed"]
        if failed:
            first = failed[0]
            error = (
                f"{len(failed)} package(s) failed; {first.get('name', first['software'])}: "
                f"{first['error']}"
            )
            return Outcome(Run.Status.FAILED, 1, output, error, result)
        return Outcome(Run.Status.SUCCEEDED, 0, output, "", result)


def _ended(result: ProcessResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.cancelled:
        return "was cancelled"
    return f"exited with code {result.exit_code}"
