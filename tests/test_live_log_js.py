"""The admin's live log script (scheduler_app/static/scheduler_app/live_log.js), in Node:
tests/js/live_log.test.js. Skipped, saying so, on a machine without Node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_vscode_client import node_test_counts

TESTS = Path(__file__).resolve().parent / "js"


def test_the_live_log_script_passes_its_node_tests() -> None:
    if shutil.which("node") is None:
        pytest.skip("node not installed: live_log.js's tests need it")
    done = subprocess.run(
        ["node", "--test", "--test-reporter=spec", *sorted(map(str, TESTS.glob("*.test.js")))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    counts = node_test_counts(report)
    assert counts["fail"] == "0" and int(counts["pass"]) >= 3, report[-4000:]
