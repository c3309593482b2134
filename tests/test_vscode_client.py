"""The VS Code extension's API client (editors/vscode/src/client.ts) against the real stack.

A live HTTP server on the test database, a real worker and beat; the Node test script
(editors/vscode/src/test/integration/api.test.ts) logs in, creates, lists, edits,
disables and enables a job, runs it, follows its log, reads its history, and is refused
another user's job (404) and a bad token (401). Node and npm are needed to build the
extension: without them (a machine with only Python) the test is skipped, saying so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from scheduler_app.models import Job, Run
from tests.helpers import make_job

EXTENSION = Path(__file__).resolve().parent.parent / "editors" / "vscode"
# The hash of the package-lock.json that node_modules was installed from.
CI_STAMP = EXTENSION / "node_modules" / ".cronfleet-npm-ci-stamp"


def npm(*args: str, timeout: float) -> None:
    """Run npm in the extension's folder; fail with its output's tail."""
    done = subprocess.run(
        ["npm", *args], cwd=EXTENSION, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"npm {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def node_test_counts(report: str) -> dict[str, str]:
    """The closing counts of node's test runner: {"tests": "9", "pass": "9", ...}."""
    return dict(re.findall(r"^\S* ?(tests|pass|fail|skipped) (\d+)$", report, re.MULTILINE))


@pytest.fixture(scope="module")
def built_extension() -> Path:
    """The extension compiled to out/; ``npm ci`` first unless node_modules already holds
    what package-lock.json says."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the VS Code extension cannot be built")
    lock = hashlib.sha256((EXTENSION / "package-lock.json").read_bytes()).hexdigest()
    if not CI_STAMP.exists() or CI_STAMP.read_text() != lock:
        npm("ci", "--no-audit", "--no-fund", timeout=600)
        CI_STAMP.write_text(lock)
    npm("run", "compile", timeout=300)
    return EXTENSION


@pytest.mark.timeout(900)
def test_extension_unit_tests(built_extension):
    """The extension's own unit tests (node --test): client, settings, formatting, manifest."""
    done = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "out/test/unit/"],
        cwd=EXTENSION, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    counts = node_test_counts(report)
    assert counts["tests"] == counts["pass"] and int(counts["pass"]) >= 30, report


@pytest.mark.stack
@pytest.mark.timeout(900)
def test_extension_client_against_the_real_stack(
    built_extension, live, live_server, owner, outsider
):
    others = make_job(outsider, name="bobs", schedule={"type": "manual"}, description="bob's")
    env = {
        **os.environ,
        "CRONFLEET_URL": live_server.url,
        "CRONFLEET_TOKEN": Token.objects.create(user=owner).key,
        "CRONFLEET_USERNAME": owner.username,
        "CRONFLEET_PASSWORD": "alice-password-1",  # tests/conftest.py's owner
        "CRONFLEET_OTHER_JOB": str(others.id),
    }
    done = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "out/test/integration/"],
        cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    counts = node_test_counts(report)
    # Every test ran and passed: none skipped for want of settings.
    assert counts["tests"] == counts["pass"] and int(counts["pass"]) >= 9, report
    assert counts["fail"] == counts["skipped"] == "0", report

    # What the script did is in the database: one job, edited, run once, its output kept.
    job = Job.objects.get(owner=owner)
    assert job.schedule == {"type": "manual"}
    assert job.description == "edited from VS Code"
    assert job.enabled
    run = Run.objects.get(job=job)
    assert (run.trigger, run.status, run.exit_code) == ("manual", "succeeded", 0)
    assert run.output.endswith("\nsecond line\n") and run.output.startswith("vscode-")
    # and nothing of the other user's changed.
    others.refresh_from_db()
    assert (others.description, others.enabled, others.runs.count()) == ("bob's", True, 0)
