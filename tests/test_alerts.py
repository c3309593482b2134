"""The dead-man's switch, judged on the database and the real Redis (no worker, no beat):
each kind opens once with its notification, and resolves when its condition ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from scheduler_app import alerts, firing, redbeat, retention, runs, services
from scheduler_app.admin import SecondsOrAuto
from scheduler_app.models import Alert, Job, Notification, Run
from tests.helpers import make_job
from workers import tasks

MINUTE = timedelta(minutes=1)


def overdue(job: Job, by: timedelta) -> None:
    """As if beat had not fired the job's slot: its next run lies ``by`` in the past."""
    Job.objects.filter(id=job.id).update(next_run_at=timezone.now() - by)


def open_alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind, resolved_at__isnull=True))


@pytest.mark.parametrize(
    ("setting", "durations", "limit"),
    [
        (None, [1.0] * 10, None),
        (60, [], 60.0),
        ("auto", [1.0] * 4, None),  # too little history to know what usual is
        ("auto", [10.0] * 19 + [100.0], 20.0),  # p95 of 20 is the 19th: one outlier ignored
        ("auto", [0.01] * 10, alerts.AUTO_FLOOR),
    ],
)
def test_the_long_run_limit(setting, durations, limit):
    assert alerts.longer_limit(setting, durations, factor=2.0) == limit


def test_a_slot_past_its_grace_opens_one_missed_alert_and_tells_the_recipients(
    owner, django_capture_on_commit_callbacks
):
    job = make_job(owner, alert_if_missed=30, notify_emails=["ops@example.com"])
    overdue(job, by=10 * timedelta(seconds=1))
    alerts.check_missed(timezone.now())
    assert open_alerts("missed") == []  # within its grace

    overdue(job, by=MINUTE)
    with django_capture_on_commit_callbacks(execute=True):
        alerts.check_missed(timezone.now())
        alerts.check_missed(timezone.now())  # the same condition: told once
    (alert,) = open_alerts("missed")
    assert alert.job == job and "beat has not sent it" in alert.detail
    notice = Notification.objects.get(alert=alert)
    assert notice.event == "missed" and notice.run is None

    tasks.notify.run(notice.id)
    assert len(mail.outbox) == 1 and mail.outbox[0].subject.endswith(": missed")
    assert str(alert.id) in mail.outbox[0].body

    job.save()  # back on its schedule: the next run is in the future again
    with django_capture_on_commit_callbacks(execute=True):
        alerts.check_missed(timezone.now())
    assert open_alerts("missed") == []
    assert Alert.objects.get(id=alert.id).resolved_at is not None
    tasks.notify.run(Notification.objects.get(alert=alert, event="resolved").id)
    assert mail.outbox[1].subject.endswith(": missed resolved")


def test_a_run_left_queued_past_its_grace_is_a_missed_slot(owner):
    job = make_job(owner, alert_if_missed=30, queue="nobody")
    slot = timezone.now() - 2 * MINUTE
    run = runs.create(job=job, trigger=Run.Trigger.SCHEDULE, scheduled_for=slot, due_at=slot)
    alerts.check_missed(timezone.now())
    (alert,) = open_alerts("missed")
    assert alert.run == run and "no worker of queue 'nobody' took it" in alert.detail
    assert alert.since == slot


def test_a_paused_job_misses_its_next_slot_once(owner):
    job = make_job(owner, alert_if_missed=30, schedule={"type": "interval", "every": 1,
                                                        "unit": "minutes"})  # fmt: skip
    services.set_enabled(job, False)
    alerts.check_missed(timezone.now())
    assert open_alerts("missed") == []  # its next slot has not come yet
    Job.objects.filter(id=job.id).update(  # as if made 10 and paused 5 minutes ago
        schedule_start=timezone.now() - 10 * MINUTE, paused_at=timezone.now() - 5 * MINUTE
    )
    alerts.check_missed(timezone.now())
    alerts.check_missed(timezone.now())
    (alert,) = open_alerts("missed")
    assert "the job is paused" in alert.detail

    job = services.set_enabled(Job.objects.get(id=job.id), True)
    alerts.check_missed(timezone.now())
    assert len(open_alerts("missed")) == 1  # resumed, but its slots are not fired yet
    (caught_up,) = firing.fire_due(job.id, job.next_run_at, timezone.now())  # beat's fire
    services.claim_run(caught_up.id, "w1@a")
    alerts.check_missed(timezone.now())
    assert open_alerts("missed") == []


def test_a_job_that_does_not_ask_is_never_watched(owner):
    overdue(make_job(owner), by=timedelta(days=1))
    alerts.check_missed(timezone.now())
    assert not Alert.objects.exists()


def scheduled_run(job: Job, late_by: timedelta) -> Run:
    slot = timezone.now() - late_by
    run = runs.create(job=job, trigger=Run.Trigger.SCHEDULE, scheduled_for=slot)
    assert run is not None
    return run


def test_a_late_start_opens_a_late_alert_and_a_start_in_time_resolves_it(owner):
    job = make_job(owner, alert_if_late=10)
    first = services.claim_run(scheduled_run(job, late_by=MINUTE).id, "w1@a")
    (alert,) = open_alerts("late")
    assert alert.run == first and "started 60 s after its slot" in alert.detail
    services.finish_run(first, Run.Status.SUCCEEDED, exit_code=0)

    second = services.claim_run(scheduled_run(job, late_by=2 * MINUTE).id, "w1@a")
    assert len(open_alerts("late")) == 1  # still late: the same alert, told once
    services.finish_run(second, Run.Status.SUCCEEDED, exit_code=0)

    services.claim_run(scheduled_run(job, late_by=timedelta(seconds=1)).id, "w1@a")
    assert open_alerts("late") == []


def test_a_manual_run_or_a_retry_is_never_late(owner):
    job = make_job(owner, alert_if_late=1)
    slot = timezone.now() - MINUTE
    retry = runs.create(job=job, trigger=Run.Trigger.RETRY, scheduled_for=slot, attempt=2)
    services.claim_run(retry.id, "w1@a")
    assert not Alert.objects.exists()


def running_for(job: Job, seconds: float) -> Run:
    run = services.claim_run(scheduled_run(job, late_by=timedelta(0)).id, "w1@a")
    Run.objects.filter(id=run.id).update(started_at=timezone.now() - timedelta(seconds=seconds))
    return run


def test_a_run_longer_than_its_limit_opens_long_running_until_it_ends(owner):
    job = make_job(owner, alert_if_longer=60)
    run = running_for(job, 30)
    alerts.check_long_running(timezone.now())
    assert open_alerts("long_running") == []
    alerts.check_long_running(timezone.now() + MINUTE)
    (alert,) = open_alerts("long_running")
    assert alert.run == run and "longer than 60 s (alert_if_longer 60 s)" in alert.detail

    services.finish_run(run, Run.Status.SUCCEEDED, exit_code=0)
    alerts.check_long_running(timezone.now() + MINUTE)
    assert open_alerts("long_running") == []


def test_auto_reads_the_job_history(owner):
    job = make_job(owner, alert_if_longer="auto")
    for _ in range(alerts.AUTO_MIN_RUNS):
        done = running_for(job, 0)
        done.started_at = timezone.now() - timedelta(seconds=5)  # the worker's copy, too
        Run.objects.filter(id=done.id).update(started_at=done.started_at)
        services.finish_run(done, Run.Status.SUCCEEDED, exit_code=0)
    assert alerts.recent_durations(job.id) == pytest.approx([5.0] * 5, abs=0.5)

    running_for(job, 8)
    alerts.check_long_running(timezone.now())
    assert open_alerts("long_running") == []  # 8 s: within 2 x p95 (about 10 s)
    alerts.check_long_running(timezone.now() + timedelta(seconds=5))
    (alert,) = open_alerts("long_running")
    assert "auto: 2 x its p95 duration" in alert.detail


def test_beat_is_down_when_its_first_entry_is_overdue(owner, settings):
    job = make_job(owner, schedule={"type": "interval", "every": 10, "unit": "seconds"})
    redbeat.save_entry(job)
    try:
        entries, first = redbeat.first_due()
        assert entries >= 1 and first is not None
        key, due = first
        after = settings.SCHEDULER_DOWN_AFTER
        assert alerts.beat_overdue(due + timedelta(seconds=after - 1), after) is None

        alerts.check_scheduler(due + timedelta(seconds=after + 1))
        (alert,) = open_alerts("scheduler_down")
        assert alert.job is None and key in alert.detail
        alerts.check_scheduler(due + timedelta(seconds=after + 2))
        assert Alert.objects.count() == 1

        alerts.check_scheduler(due)  # beat keeps up again
        assert open_alerts("scheduler_down") == []
    finally:
        redbeat.remove_entry(job.id)


def test_the_scheduler_alert_goes_to_the_admins(db, settings, django_capture_on_commit_callbacks):
    settings.SCHEDULER_ADMIN_EMAILS = ["root@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        alert = alerts.open_alert("scheduler_down", None, timezone.now(), "beat is down: ...")
    tasks.notify.run(Notification.objects.get(alert=alert).id)
    assert mail.outbox[0].to == ["root@example.com"]
    assert mail.outbox[0].subject.endswith("the scheduler: scheduler down")


def test_an_alert_nobody_would_hear_is_still_recorded(owner):
    job = make_job(owner)
    alert = alerts.open_alert("missed", job, timezone.now(), "...")
    assert alert is not None and alerts.resolve("missed", [job.id]) == 1
    assert not Notification.objects.exists()


def test_the_api_lists_your_alerts_and_only_yours(owner, api, outsider_api, admin_client):
    job = make_job(owner, alert_if_missed=30)
    mine = alerts.open_alert("missed", job, timezone.now(), "no run started")
    down = alerts.open_alert("scheduler_down", None, timezone.now(), "beat is down")
    alerts.resolve("missed", [job.id])

    listed = api.get("/api/v1/alerts/").json()
    assert [a["id"] for a in listed["results"]] == [mine.id]
    assert listed["results"][0]["open"] is False and listed["results"][0]["job_name"] == "j"
    assert api.get("/api/v1/alerts/?open=true").json()["count"] == 0
    assert api.get(f"/api/v1/alerts/{down.id}/").status_code == 404
    assert outsider_api.get("/api/v1/alerts/").json()["count"] == 0
    assert outsider_api.get(f"/api/v1/alerts/{mine.id}/").status_code == 404

    page = admin_client.get("/admin/scheduler_app/alert/?resolved_at__isempty=1")
    assert page.status_code == 200 and b"beat is down" in page.content


def test_resolved_alerts_go_with_failed_runs_retention_and_open_ones_stay(owner, settings):
    settings.RUN_RETENTION_DAYS_FAILED = 90
    job = make_job(owner)
    old = alerts.open_alert("missed", job, timezone.now(), "old")
    alerts.resolve("missed", [job.id])
    still = alerts.open_alert("missed", job, timezone.now(), "still open")
    later = timezone.now() + timedelta(days=91)
    assert retention.prune_alerts(later) == 1
    assert list(Alert.objects.all()) == [still] and old.id != still.id


def test_alert_settings_round_trip_through_the_api(api):
    body = {"name": "watched", "payload": {"command": "true"}, "schedule": "@hourly",
            "alert_if_missed": 300, "alert_if_late": 60, "alert_if_longer": "auto"}  # fmt: skip
    made = api.post("/api/v1/jobs/", body, format="json").json()
    assert (made["alert_if_missed"], made["alert_if_late"], made["alert_if_longer"]) == (
        300, 60, "auto")  # fmt: skip
    changed = api.patch(f"/api/v1/jobs/{made['id']}/", {"alert_if_longer": 600}, format="json")
    assert changed.json()["alert_if_longer"] == 600
    cleared = api.patch(f"/api/v1/jobs/{made['id']}/", {"alert_if_longer": None}, format="json")
    assert cleared.json()["alert_if_longer"] is None


@pytest.mark.parametrize(("typed", "value"), [("auto", "auto"), (" 600 ", 600), ("", None)])
def test_the_admin_takes_alert_if_longer_as_typed(typed, value):
    assert SecondsOrAuto(required=False).clean(typed) == value
