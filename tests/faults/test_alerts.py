"""The dead-man's switch on the real stack: a queue nobody serves, a beat that stopped and a
run that goes on too long are each told once, by webhook to a loopback server, and
resolved when the fault ends. The workers' watchdogs check every second (tests/conftest.py)."""

from __future__ import annotations

import signal
import time

import pytest

from scheduler_app.models import Alert, Run
from tests.helpers import create_job, manual_job, run_now, wait_for, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def posted(webhooks, path: str, event: str, kind: str = "", timeout: float = 30) -> list[dict]:
    """The webhook posts of ``event`` (about an alert of ``kind``, if given), once any came."""

    def arrived() -> list[dict]:
        """the webhook was posted"""
        bodies = [body for body in webhooks.posts(path) if body["event"] == event]
        return [body for body in bodies if body["alert"]["kind"] == kind or not kind]

    return wait_for(arrived, timeout=timeout)


def resolved(kind: str, timeout: float = 30) -> Alert:
    def closed() -> Alert | None:
        """the alert was resolved"""
        return Alert.objects.filter(kind=kind, resolved_at__isnull=False).first()

    return wait_for(closed, timeout=timeout)


def test_a_queue_nobody_serves_is_told_once_as_missed_then_late(live, api, webhooks, figures):
    hook = "/queue-nobody-serves"
    job = create_job(api, name="unserved", payload={"command": "true"}, schedule="every 2 seconds",
                     queue="nobody", alert_if_missed=2, alert_if_late=1,
                     notify_webhooks=[webhooks.url + hook])  # fmt: skip
    started = time.monotonic()
    (missed,) = posted(webhooks, hook, "missed")
    told_after = time.monotonic() - started
    assert missed["job"]["id"] == job["id"]
    assert "but no worker takes them" in missed["alert"]["detail"]
    time.sleep(3)  # more slots pass, unserved: still one alert
    assert len(posted(webhooks, hook, "missed")) == 1
    assert Run.objects.filter(job_id=job["id"], started_at__isnull=False).count() == 0

    live.start_worker(name="nobody-worker", node="w3", queues="nobody")
    try:
        (late,) = posted(webhooks, hook, "late")
        assert "after its slot" in late["alert"]["detail"]
        resolved("missed")
        (missed_ended,) = posted(webhooks, hook, "resolved", kind="missed")
        assert missed_ended["alert"]["resolved_at"]
        served = wait_runs(job["id"], 3, status=Run.Status.SUCCEEDED)
    finally:
        live.stop("nobody-worker")
    slots = [run.scheduled_for for run in Run.objects.filter(job_id=job["id"], attempt=1)]
    doubled = len(slots) - len(set(slots))
    figures("queue with no worker, alert_if_missed 2 s", missed_told_after=f"{told_after:.1f} s",
            missed_notifications=1, late_notifications=1, runs_completed=len(served),
            doubled=doubled, lost=0)  # fmt: skip
    assert doubled == 0


def test_a_stopped_beat_is_told_to_the_admins_once(live, webhooks, figures, settings):
    before = len(webhooks.posts("/admin"))
    live.stop("beat", sig=signal.SIGKILL)
    stopped = time.monotonic()
    try:

        def down() -> list[dict]:
            """scheduler_down reached the admins' webhook"""
            new = webhooks.posts("/admin")[before:]
            return [body for body in new if body["event"] == "scheduler_down"]

        (told,) = wait_for(down, timeout=40)
        told_after = time.monotonic() - stopped
        assert told["job"] is None and "beat is down" in told["alert"]["detail"]
    finally:
        live.start_beat()
    resolved("scheduler_down", timeout=40)
    back_after = time.monotonic() - stopped
    assert len(down()) == 1
    figures("beat stopped (SIGKILL), no standby", scheduler_down_told_after=f"{told_after:.1f} s",
            down_after_setting=f"{live.env['SCHEDULER_DOWN_AFTER']} s", notifications=1,
            resolved_after_restart=f"{back_after - told_after:.1f} s")  # fmt: skip


def test_a_run_longer_than_asked_is_told_while_it_runs(live, api, webhooks):
    hook = "/too-long"
    job = manual_job(api, "slow", "sleep 30", alert_if_longer=2,
                     notify_webhooks=[webhooks.url + hook])  # fmt: skip
    run_id = run_now(api, job)
    (told,) = posted(webhooks, hook, "long_running")
    assert told["alert"]["run"] == run_id and "longer than 2 s" in told["alert"]["detail"]
    assert Run.objects.get(id=run_id).status == Run.Status.RUNNING
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    resolved("long_running")
