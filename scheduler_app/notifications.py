"""Telling people how a run ended: e-mail and webhooks, on failure, success or recovery.

``recovery`` is the first success after a failure. A failed attempt that will be
retried notifies nobody; its last attempt does. Each notification is a row
(:class:`Notification`, the outbox) written with the run's end; the
``workers.notify`` task sends it after the commit, so a slow mail server or
webhook never holds up a run, and a lost message is swept up and sent again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from scheduler_app import egress
from scheduler_app.models import Job, Notification, Run

logger = logging.getLogger(__name__)

TAIL = 2000
WEBHOOK_BODY = 1024  # bytes of a webhook's answer read (it is not kept)


def events_for(status: str, previous: str | None, retrying: bool) -> list[str]:
    """The events a run that ended with ``status`` is: ``previous`` is how the job's run
    before it ended (for ``recovery``); a failed attempt that will be retried is none."""
    if status in Run.FAILURES:
        return [] if retrying else ["failure"]
    if status == Run.Status.SUCCEEDED:
        return ["success", "recovery"] if previous in Run.FAILURES else ["success"]
    return []


def has_recipients(job: Job) -> bool:
    return bool(job.notify_emails or job.notify_webhooks)


def wanted(job: Job, events: list[str]) -> list[str]:
    """Those of ``events`` the job has subscribed to and someone to tell about."""
    if not has_recipients(job):
        return []
    return [event for event in events if event in (job.notify_on or [])]


def previous_status(run: Run) -> str | None:
    """How the job's run before this one ended (skips, misses and cancels aside)."""
    return (
        run.job.runs.filter(finished_at__isnull=False, id__lt=run.id)
        .exclude(status__in=[Run.Status.SKIPPED, Run.Status.MISSED, Run.Status.CANCELLED])
        .order_by("-id")
        .values_list("status", flat=True)
        .first()
    )


def record(run: Run, event: str) -> Notification | None:
    """The outbox row for the run's ``event``, once; None when it exists already."""
    notice, made = Notification.objects.get_or_create(run=run, event=event)
    return notice if made else None


def mark_sent(notice_id: int) -> bool:
    """Sent now; False when it was sent already (a copy got there first)."""
    return bool(
        Notification.objects.filter(id=notice_id, sent_at__isnull=True).update(
            sent_at=timezone.now()
        )
    )


def message(run: Run, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "job": {"id": run.job_id, "name": run.job.name},
        "run": {
            "id": run.id, "status": run.status, "attempt": run.attempt,
            "trigger": run.trigger, "scheduled_for": run.scheduled_for.isoformat(),
            "duration": run.duration, "exit_code": run.exit_code, "worker": run.worker,
            "error": run.error, "output_tail": run.output[-TAIL:],
        },
    }  # fmt: skip


def send(run: Run, event: str) -> None:
    job: Job = run.job
    subject = f"[{settings.SCHEDULER_NAME}] {job.name}: {event} (run {run.id}, {run.status})"
    deliver(subject, message(run, event), job.notify_emails or [], job.notify_webhooks or [])


def deliver(subject: str, body: dict[str, Any], emails: list[str], webhooks: list[str]) -> None:
    """E-mail ``body`` (as JSON) to ``emails`` and POST it to each webhook. A mail server
    away raises (the task tries again); a webhook that fails is logged.

    Webhooks go through the egress guard (a URL to loopback, a private or a metadata
    address is refused unless SCHEDULER_HTTP_ALLOW lists it), each bounded by
    SCHEDULER_WEBHOOK_TIMEOUT in all and SCHEDULER_HTTP_CONNECT_TIMEOUT to connect, so
    an endpoint that never answers holds the notify task for seconds, not minutes."""
    if emails:
        send_mail(subject, json.dumps(body, indent=2), None, emails, fail_silently=False)
    data = json.dumps(body).encode()
    for url in webhooks:
        try:
            response = egress.request(
                "POST", url, body=data, timeout=settings.SCHEDULER_WEBHOOK_TIMEOUT,
                headers={"Content-Type": "application/json", "User-Agent": "cronfleet"},
                max_body=WEBHOOK_BODY,
            )  # fmt: skip
        except egress.EgressError as exc:
            logger.warning("webhook %s (%s) failed: %s", url, subject, exc)
            continue
        if response.status >= 400:
            logger.warning("webhook %s (%s) answered HTTP %s", url, subject, response.status)
