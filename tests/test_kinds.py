"""Every kind of job, end to end through the real worker, with limits and secret masking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from scheduler_app.models import Run
from tests.helpers import create_job, manual_job, run_now, wait_for, wait_runs

pytestmark = pytest.mark.stack


def run_once(api, **fields) -> Run:
    job = create_job(api, name=f"kind-{uuid.uuid4().hex[:8]}", schedule="manual", **fields)
    run_now(api, job)
    (run,) = wait_runs(job["id"], 1, timeout=60, finished_at__isnull=False)
    return run


@pytest.fixture
def job_dir() -> Iterator[Path]:
    path = Path(settings.SCHEDULER_ALLOWED_DIRS[0]) / f"test-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[bytes]]]:
    """A server on loopback: records each POST body; 201 with the right X-Token, else 403."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(body)
            self.send_response(201 if self.headers["X-Token"] == "t0k3n" else 403)
            self.end_headers()
            self.wfile.write(b"got " + body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_commands_run_in_order_and_stop_on_failure(live, api):
    run = run_once(api, kind="commands", payload={"commands": ["echo one", "false", "echo three"]})
    assert (run.status, run.exit_code) == ("failed", 1)
    assert run.output == "$ echo one\none\n$ false\n"
    assert [s["exit_code"] for s in run.result["steps"]] == [0, 1]
    keep_going = run_once(
        api,
        kind="commands",
        payload={"commands": ["false", "echo after"], "stop_on_failure": False},
    )
    assert keep_going.status == "failed" and "after" in keep_going.output
    assert keep_going.error == "1 of 2 steps failed."


def test_python_and_script_run_in_a_child(live, api, job_dir):
    inline = run_once(api, kind="python", payload={"code": "import os; print(os.getpid() > 1)"})
    assert (inline.status, inline.output) == ("succeeded", "True\n")
    script = job_dir / "report.py"
    script.write_text("import sys; print('args', sys.argv[1:]); sys.exit(3)\n")
    run = run_once(api, kind="script", payload={"path": str(script), "args": ["a", "b"]})
    assert (run.status, run.exit_code, run.output) == ("failed", 3, "args ['a', 'b']\n")


def test_pytest_counts_are_in_the_result(live, api, job_dir):
    (job_dir / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_ok_too(): pass\n"
        "def test_bad(): assert False\n"
        "@pytest.mark.skip\ndef test_skipped(): pass\n"
    )
    run = run_once(
        api, kind="pytest", payload={"path": str(job_dir), "args": ["-p", "no:cacheprovider"]}
    )
    assert run.status == "failed"
    assert run.result == {"passed": 2, "failed": 1, "skipped": 1, "errors": 0}


def test_http_records_status_time_and_body(live, api, http_server):
    payload = {
        "url": http_server[0] + "/hook",
        "method": "POST",
        "headers": {"X-Token": "t0k3n"},
        "body": {"ping": 1},
        "expect_status": [201],
    }
    run = run_once(api, kind="http", payload=payload)
    assert run.status == "succeeded"
    assert run.result["status"] == 201 and run.result["elapsed_ms"] >= 0
    assert run.result["body_excerpt"] == 'got {"ping": 1}'
    refused = run_once(api, kind="http", payload={**payload, "headers": {"X-Token": "no"}})
    assert (refused.status, refused.error) == ("failed", "HTTP 403, expected 201.")


def test_celery_task_return_value_is_recorded(live, api):
    run = run_once(
        api,
        kind="celery",
        payload={"task": "workers.echo", "args": [1, "two"], "kwargs": {"three": 3}},
    )
    assert run.status == "succeeded", run.error + run.output
    assert run.result == {"return_value": {"args": [1, "two"], "kwargs": {"three": 3}}}


def test_secrets_are_masked_in_output_and_api(live, api):
    run = run_once(
        api,
        payload={"command": 'echo "token=$TOKEN user=$USER_NAME"'},
        env={"TOKEN": {"value": "s3cr3t-value", "secret": True}, "USER_NAME": "ann"},
    )
    assert run.output == "token=*** user=ann\n"
    job = api.get(f"/api/v1/jobs/{run.job_id}/").data
    assert job["env"] == {"TOKEN": {"value": "***", "secret": True}, "USER_NAME": "ann"}
    log = api.get(f"/api/v1/runs/{run.id}/log/").data["output"]
    assert "s3cr3t" not in log


def test_a_memory_limit_stops_a_job_allocating_past_it(live, api):
    run = run_once(
        api,
        kind="python",
        max_memory_mb=128,
        payload={"code": "x = bytearray(512 * 1024 * 1024)\nprint('allocated')"},
    )
    assert run.status == "failed"
    assert "MemoryError" in run.output and "allocated" not in run.output


def test_a_failing_condition_skips_the_run(live, api):
    skipped = run_once(
        api, payload={"command": "echo ran"}, condition="echo checking; test -f /nonexistent"
    )
    assert (skipped.status, skipped.error) == (
        "skipped",
        "skipped: the condition exited with code 1.",
    )
    assert skipped.output == "checking\n"
    ran = run_once(api, payload={"command": "echo ran"}, condition="true")
    assert (ran.status, ran.output) == ("succeeded", "ran\n")


def test_failure_and_recovery_are_notified_by_webhook_and_mail(live, api, http_server, job_dir):
    url, received = http_server
    marker = job_dir / "recovered"
    job = create_job(api, name="notified", schedule="manual",
                     payload={"command": f"test -f {marker}"},
                     notify_emails=["ops@example.com"], notify_webhooks=[url + "/hook"],
                     notify_on=["failure", "recovery"])  # fmt: skip
    run_now(api, job)
    wait_for(lambda: len(received) >= 1, timeout=30)
    marker.touch()
    run_now(api, job)
    wait_for(lambda: len(received) >= 2, timeout=30)

    failure, recovery = (json.loads(body) for body in received[:2])
    assert (failure["event"], failure["run"]["status"], failure["run"]["exit_code"]) == (
        "failure", "failed", 1)  # fmt: skip
    assert (recovery["event"], recovery["job"]["name"]) == ("recovery", "notified")
    mails = "".join(p.read_text() for p in (live.logs / "mail").glob("*.log"))
    assert "notified: failure" in mails and "notified: recovery" in mails
    assert "To: ops@example.com" in mails


def test_a_dependency_chain_runs_a_then_b_then_c(live, api):
    a = manual_job(api, "chain-a", "echo a")
    b = manual_job(api, "chain-b", "exit 1", depends_on=[{"job": a["id"], "on": "success"}])
    c = manual_job(api, "chain-c", "echo c", depends_on=[{"job": b["id"], "on": "failure"}])
    never = manual_job(api, "chain-never", "true", depends_on=[{"job": b["id"], "on": "success"}])
    run_now(api, a)

    (c_run,) = wait_runs(c["id"], 1, timeout=60, status=Run.Status.SUCCEEDED)

    (a_run,) = Run.objects.filter(job_id=a["id"])
    (b_run,) = Run.objects.filter(job_id=b["id"])
    assert (b_run.trigger, b_run.status, c_run.trigger) == ("dependency", "failed", "dependency")
    assert a_run.scheduled_for == b_run.scheduled_for == c_run.scheduled_for
    assert b_run.started_at >= a_run.finished_at and c_run.started_at >= b_run.finished_at
    assert not Run.objects.filter(job_id=never["id"]).exists()


@pytest.mark.parametrize(("modules", "accepted"), [("tests.operator_tasks", True), ("", False)])
def test_operator_task_modules_may_be_called_by_celery_jobs(modules, accepted):
    """SCHEDULER_TASK_MODULES registers the operator's own tasks; without it a `celery`
    job naming one is refused, with the setting named in the message."""
    code = (
        "import django; django.setup()\n"
        "from scheduler_app import payloads\n"
        "try:\n"
        "    print(payloads.celery({'task': 'tests.operator_tasks.nightly_report'})['task'])\n"
        "except payloads.PayloadError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {**os.environ, "DEBUG": "1", "SCHEDULER_TASK_MODULES": modules}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    if accepted:
        assert done.stdout.strip() == "tests.operator_tasks.nightly_report"
    else:
        assert done.stdout.startswith("refused:")
        assert "SCHEDULER_TASK_MODULES" in done.stdout


def test_output_with_nul_bytes_and_control_characters_is_recorded(live, api):
    """PostgreSQL refuses NUL in text: a job printing one (a binary blob, a careless
    `cat`) must still end, with its output kept readable."""
    run = run_once(api, payload={"command": r"printf 'a\000b\033[31mred\n'; exit 3"})
    assert run.status == Run.Status.FAILED and run.exit_code == 3
    assert run.output.startswith("a") and "b\x1b[31mred" in run.output
    assert "\x00" not in run.output
