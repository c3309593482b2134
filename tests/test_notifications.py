"""Notifications are an outbox: written with the run's end, sent once, swept up when lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from scheduler_app import services
from scheduler_app.models import Notification, Run
from tests.helpers import make_job
from workers import tasks


@pytest.fixture
def failed_run(owner, django_capture_on_commit_callbacks) -> Run:
    job = make_job(owner, notify_emails=["ops@example.com"], notify_on=["failure"])
    run = Run.objects.create(job=job, trigger="manual", scheduled_for=job.created_at)
    services.claim_run(run.id, "w1@a")
    with django_capture_on_commit_callbacks(execute=False) as sent:
        services.finish_run(run, Run.Status.FAILED, exit_code=1)
    assert len(sent) == 1  # the notification, handed to a worker after the commit
    return run


def test_a_run_end_writes_its_notification_once(failed_run):
    assert list(Notification.objects.values_list("run_id", "event")) == [(failed_run.id, "failure")]
    services.finish_run(failed_run, Run.Status.FAILED, exit_code=1)  # a redelivered report
    assert Notification.objects.count() == 1


def test_a_notification_is_sent_once_whatever_the_copies(failed_run):
    notice = Notification.objects.get()
    tasks.notify.run(notice.id)
    tasks.notify.run(notice.id)  # the swept-up copy arrives too
    assert len(mail.outbox) == 1 and "failure" in mail.outbox[0].subject
    assert Notification.objects.get().sent_at is not None


def test_the_sweep_sends_again_only_what_is_stale_and_unsent(
    failed_run, django_capture_on_commit_callbacks
):
    stale = timezone.now() - timedelta(minutes=10)
    lost = Notification.objects.get()
    Notification.objects.filter(id=lost.id).update(due_at=stale)
    sent = Notification.objects.create(run=failed_run, event="success", due_at=stale,
                                       sent_at=timezone.now())  # fmt: skip
    worn = Notification.objects.create(run=failed_run, event="recovery", due_at=stale,
                                       sends=services.MAX_NOTIFICATION_SENDS)  # fmt: skip

    with django_capture_on_commit_callbacks(execute=False) as resent:
        assert services.resend_notifications(after=300) == 1
        assert services.resend_notifications(after=300) == 0

    assert len(resent) == 1
    lost.refresh_from_db()
    assert (lost.sends, lost.due_at > stale) == (2, True)
    assert Notification.objects.get(id=sent.id).sends == 1
    assert Notification.objects.get(id=worn.id).sends == services.MAX_NOTIFICATION_SENDS
