"""``schedule run --wait``, ``logs --follow`` and ``cancel`` on the real stack: the
console script against a live HTTP server, a real Celery worker running the job."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.authtoken.models import Token

from scheduler_app.models import Run
from tests.cli_runner import Schedule
from tests.helpers import manual_job, processes_running, run_now, wait_for

pytestmark = pytest.mark.stack

SLOW_FAILURE = "echo a; sleep 2; echo b; exit 3"


@pytest.fixture
def schedule(live, api, owner, live_server, tmp_path) -> Schedule:
    return Schedule(live_server.url, Token.objects.get(user=owner).key, tmp_path)


def test_run_wait_streams_the_output_and_exits_with_the_runs_code(schedule, api):
    manual_job(api, "slow-failure", SLOW_FAILURE)
    waiting = schedule.popen("run", "slow-failure", "--wait")
    first_line = waiting.stdout.readline()
    seen_first = time.monotonic()
    rest, errors = waiting.communicate(timeout=90)
    ended = time.monotonic()
    assert (first_line, rest) == ("a\n", "b\n"), errors
    assert waiting.returncode == 3
    # Streamed: "a" came while the job still slept, not all at the end.
    assert ended - seen_first > 1.0
    assert "failed run" in errors and "exited with code 3" in errors


def test_run_wait_json_is_the_finished_run(schedule, api):
    job = manual_job(api, "ok", "echo fine")
    done = schedule("run", str(job["id"]), "--wait", "-o", "json", timeout=90)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["status"], run["exit_code"], run["output"]) == ("succeeded", 0, "fine\n")


def test_run_wait_gives_up_after_its_timeout(schedule, api):
    manual_job(api, "sleepy", "sleep 20")
    gave_up = schedule("run", "sleepy", "--wait", "--timeout", "1", timeout=60)
    assert gave_up.returncode == 1
    assert "Stopped waiting after 1 s" in gave_up.stderr and "--follow" in gave_up.stderr


def test_logs_follow_reads_a_running_run_until_it_ends(schedule, api):
    job = manual_job(api, "slow-failure", SLOW_FAILURE)
    run_id = run_now(api, job)
    followed = schedule("logs", str(run_id), "--follow", timeout=90)
    assert (followed.returncode, followed.stdout) == (0, "a\nb\n"), followed.stderr
    assert Run.objects.get(id=run_id).status == Run.Status.FAILED
    again = schedule("logs", str(run_id), "-o", "json")
    assert json.loads(again.stdout) == {
        "id": run_id,
        "status": "failed",
        "finished": True,
        "offset": 0,
        "next_offset": 4,
        "output": "a\nb\n",
    }


def test_cancel_stops_a_running_run(schedule, api):
    job = manual_job(api, "long", "sleep 327")
    run_id = run_now(api, job)

    def running() -> bool:
        """the run started"""
        return Run.objects.get(id=run_id).status == Run.Status.RUNNING

    wait_for(running, timeout=30)
    wait_for(lambda: processes_running("sleep", "327"))
    cancelled = schedule("cancel", str(run_id), "-o", "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"

    def stopped() -> bool:
        """the worker reported how the run ended"""
        return Run.objects.filter(id=run_id, duration__isnull=False).exists()

    wait_for(stopped, timeout=30)
    assert Run.objects.get(id=run_id).status == Run.Status.CANCELLED
    assert processes_running("sleep", "327") == []
    again = schedule("cancel", str(run_id))
    assert again.returncode == 1 and "already ended" in again.stderr
