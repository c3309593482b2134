"""What the admin's own pages show: the dashboard, a run's page, a job's panels.

The pages are drawn in the admin's look (templates under
scheduler_app/templates/scheduler_app/admin/); what changes while they are open (the
dashboard's figures, a running run's output) they poll from the API with the session.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from scheduler_app import access, schedules
from scheduler_app.api.views import job_upcoming, plan_warnings, request_budget
from scheduler_app.humanize import human_duration, visible_controls
from scheduler_app.models import Job, Run

STATUS_COLOURS = {
    Run.Status.QUEUED: "#546e7a",
    Run.Status.WAITING: "#8d6e63",
    Run.Status.RUNNING: "#1565c0",
    Run.Status.SUCCEEDED: "#2e7d32",
    Run.Status.FAILED: "#c62828",
    Run.Status.TIMED_OUT: "#ef6c00",
    Run.Status.CANCELLED: "#546e7a",
    Run.Status.SKIPPED: "#9e9e9e",
    Run.Status.MISSED: "#9e9e9e",
    Run.Status.LOST: "#6a1b9a",
}
FIRES_SHOWN = 10  # a job's next fire times on its page
STRIP_RUNS = 50  # a job's latest runs as marks
RELATED_SHOWN = 50  # a run's attempts, children, dependency runs
LOG_POLL_MS = 1000  # how often a running run's page asks for more output
LOADED = "_cronfleet_page_row"  # on a request: (model, id, row) change_view loaded


class PageContext(admin.ModelAdmin):
    """A change page with context of its own (``page_context``), from the row that
    Django's change form loads: the row is read once per request, not once for the
    context and again for the form."""

    def page_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context = {**(extra_context or {}), **self.page_context(request, obj)}
            request.__dict__[LOADED] = (self.model, unquote(object_id), obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None
                   ) -> Any:  # fmt: skip
        """The row change_view loaded (this request's, by the same id), else a read."""
        loaded = request.__dict__.pop(LOADED, None)
        if loaded is not None and from_field is None and loaded[:2] == (self.model, object_id):
            return loaded[2]
        return super().get_object(request, object_id, from_field)


def status_badge(value: str) -> str:
    if not value:
        return "-"
    colour = STATUS_COLOURS.get(value, "#333")
    return format_html('<span class="cf-badge" style="background:{}">{}</span>', colour,
                       value.replace("_", " "))  # fmt: skip


def run_url(run_id: int) -> str:
    return reverse("admin:scheduler_app_run_change", args=[run_id])


def job_url(job_id: int) -> str:
    return reverse("admin:scheduler_app_job_change", args=[job_id])


def dashboard_page(request: HttpRequest) -> HttpResponse:
    """The fleet at a glance (the admin's index links here); its figures come from
    GET /api/v1/dashboard/, polled, so it shows only what the user may view."""
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "colours": {str(k): v for k, v in STATUS_COLOURS.items()},
        "poll": {
            "figures": reverse("dashboard"),
            "log": reverse("run-log", args=[0]),
            "run": run_url(0),
            "job": job_url(0),
            "every_ms": 10_000,
            "log_every_ms": LOG_POLL_MS,
        },
    }
    return TemplateResponse(request, "scheduler_app/admin/dashboard.html", context)


def related_runs(user: Any, run: Run) -> dict[str, list[Run]]:
    """The runs a run's page links to, those the user may view: the other attempts at
    the same fire time, its fan-out parent and children, the runs of the jobs it waits
    on (upstream) and of those waiting on it (downstream) for the same fire time."""
    mine = access.visible(user, Run.objects.all(), "job__").select_related("job")
    same_fire = mine.filter(scheduled_for=run.scheduled_for)
    upstream = run.job.dependencies.values("upstream_id")
    downstream = run.job.dependents.values("job_id")
    return {
        "attempts": list(same_fire.filter(job_id=run.job_id, node=run.node).exclude(id=run.id)
                         .order_by("attempt")[:RELATED_SHOWN]),
        "parent": list(mine.filter(id=run.parent_id)),
        "children": list(mine.filter(parent_id=run.id).order_by("node")[:RELATED_SHOWN]),
        "upstream": list(same_fire.filter(job_id__in=upstream)[:RELATED_SHOWN])
        if run.trigger == Run.Trigger.DEPENDENCY else [],
        "downstream": list(same_fire.filter(job_id__in=downstream,
                                            trigger=Run.Trigger.DEPENDENCY)[:RELATED_SHOWN]),
    }  # fmt: skip


def run_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    """What a run's page shows besides the admin's own: see run_change_form.html."""
    related = related_runs(request.user, run)
    # A running run's unended line may be rewritten yet (a progress bar): the page shows
    # the ended lines, and its script follows from there (live_log.js).
    shown = run.output if run.is_finished else run.output[: run.output.rfind("\n") + 1]
    return {
        "run": run,
        "badge": status_badge(run.status),
        "duration": human_duration(run.duration),
        "job_link": job_url(run.job_id),
        "related": [
            (title, [(r, run_url(r.id), status_badge(r.status)) for r in rows])
            for title, rows in related.items()
            if rows
        ],
        "output": visible_controls(shown),
        "error": visible_controls(run.error),
        "result": None if run.result is None else json.dumps(run.result, indent=2),
        "can_cancel": run.status in Run.PENDING and access.can(request.user, "operate", run),
        "follow": {
            "log": reverse("run-log", args=[run.id]),
            "offset": len(shown),
            "finished": run.is_finished,
            "every_ms": LOG_POLL_MS,
        },
    }


def job_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    """The job page's buttons: which apply, and whether the user may press them."""
    pending = job.runs.filter(status__in=Run.PENDING).order_by("-queued_at", "-id").first()
    return {
        "can_operate": access.can(request.user, "operate", job),
        "job_enabled": job.enabled,
        "pending_run": pending,
    }


def next_fires(job: Job) -> str:
    """The job's next fire times in its zone and in UTC, and the schedule's warnings
    (DST changes that move or drop a fire time, a plan cut short), as the preview has."""
    if not job.is_scheduled:
        return "Not scheduled (paused, manual or completed)."
    now = timezone.now()
    budget = request_budget()
    fires = job_upcoming(job, now, FIRES_SHOWN, budget)
    zone = schedules.get_zone(job.timezone)
    warnings = schedules.dst_warnings(job.schedule, zone, now, now + timedelta(days=366))
    warnings += plan_warnings(budget, fires, FIRES_SHOWN, job.schedule, job.end_at)
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td></tr>",
        ((f"{t.astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z}", f"{t:%Y-%m-%d %H:%M:%S} UTC")
         for t in fires),
    )  # fmt: skip
    notes = format_html_join("", '<li class="cf-warning">{}</li>', ((w,) for w in warnings))
    return format_html(
        '<table class="cf-fires"><thead><tr><th>{}</th><th>UTC</th></tr></thead>'
        "<tbody>{}</tbody></table><ul class=\"cf-warnings\">{}</ul>",
        job.timezone, rows or mark_safe("<tr><td colspan=2>none</td></tr>"), notes,
    )  # fmt: skip


def run_strip(job: Job) -> str:
    """The job's latest runs, oldest first, as coloured marks linking to each run."""
    runs = list(job.runs.all()[:STRIP_RUNS])[::-1]
    if not runs:
        return "No runs yet."
    marks = format_html_join(
        "", '<a class="cf-mark" href="{}" style="background:{}" title="{}"></a>',
        ((run_url(r.id), STATUS_COLOURS.get(r.status, "#333"),
          f"#{r.id} {r.status.replace('_', ' ')}, {r.trigger}, queued "
          f"{r.queued_at:%Y-%m-%d %H:%M:%S} UTC, {human_duration(r.duration)}")
         for r in runs),
    )  # fmt: skip
    return format_html('<div class="cf-strip">{}</div>', marks)
