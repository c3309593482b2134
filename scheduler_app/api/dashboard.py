"""GET /api/v1/dashboard/: what the admin's dashboard page polls (scheduler_app.dashboard).

Runs per hour over the last 24 hours by status, the jobs that fail or run most in the
window with their success rate and p95 duration, the runs running now, the recent
failures, and each soon-firing job's fire times over the next 24 hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.fields import empty
from rest_framework.request import Request
from rest_framework.response import Response

from scheduler_app import dashboard
from scheduler_app.api.views import (
    MAX_REQUEST_STEPS,
    budget_warnings,
    job_upcoming,
    jobs_of,
    request_budget,
)
from scheduler_app.humanize import human_duration
from scheduler_app.models import Run

UPCOMING_JOBS = 12  # the jobs that fire soonest, on the timeline
UPCOMING_PER_JOB = 48  # fire times of one job in the 24 hours (a dot each); more is said
AHEAD = timedelta(hours=24)


class GivenChoiceField(serializers.ChoiceField):
    """A choice that, given empty (``?window=``), is refused as not one of the choices:
    DRF would take an empty query parameter for a missing one, and its default."""

    def get_value(self, dictionary: Any) -> Any:
        return dictionary.get(self.field_name, empty)


class DashboardQuerySerializer(serializers.Serializer):
    window = GivenChoiceField(
        choices=list(dashboard.WINDOWS), default="24h",
        help_text="The span of the per-job figures and the failures: 24h or 7d.",
    )  # fmt: skip


class HourSerializer(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="The hour's start (UTC).")
    by_status = serializers.DictField(child=serializers.IntegerField(min_value=0))


class JobHealthSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    job_name = serializers.CharField()
    runs = serializers.IntegerField(min_value=0)
    succeeded = serializers.IntegerField(min_value=0)
    failed = serializers.IntegerField(min_value=0, help_text="failed, timed out or lost")
    success_rate = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)
    p95 = serializers.SerializerMethodField(help_text="p95_seconds in words, e.g. 2 min 4 s")

    def get_p95(self, row: dashboard.JobHealth) -> str:
        return human_duration(row.p95_seconds)


class DashboardRunSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True)
    error = serializers.SerializerMethodField()
    duration_text = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "job", "job_name", "status", "attempt", "queued_at", "started_at",
                  "finished_at", "duration", "duration_text", "exit_code", "worker", "node",
                  "error"]  # fmt: skip
        read_only_fields = fields

    def get_error(self, run: Run) -> str:
        return run.error[: dashboard.ERROR_SHOWN]

    def get_duration_text(self, run: Run) -> str:
        return human_duration(run.duration)


class UpcomingJobSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    job_name = serializers.CharField()
    at = serializers.ListField(child=serializers.DateTimeField())
    more = serializers.BooleanField(help_text="More fire times in the 24 hours than listed.")


class DashboardSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    figures_at = serializers.DateTimeField(
        help_text="When hours, jobs and upcoming were computed: they are kept for "
        "DASHBOARD_CACHE_SECONDS (running and failures are read at every call)."
    )
    window = serializers.CharField()
    hours = HourSerializer(many=True)
    jobs = JobHealthSerializer(many=True)
    running = DashboardRunSerializer(many=True)
    failures = DashboardRunSerializer(many=True)
    upcoming = UpcomingJobSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


def upcoming(user: Any, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    """The fire times over the next 24 hours of the jobs that fire soonest, as
    GET /next-runs/ finds them (the same plans, under one request's budget)."""
    until = now + AHEAD
    jobs = jobs_of(user).filter(next_run_at__isnull=False, next_run_at__lte=until)
    jobs = jobs.select_related("calendar").order_by("next_run_at", "id")[:UPCOMING_JOBS]
    budget = request_budget(MAX_REQUEST_STEPS)
    found = []
    for job in jobs:
        times = job_upcoming(job, now, UPCOMING_PER_JOB + 1, budget)
        within = [t for t in times if t <= until]
        found.append({"job": job.id, "job_name": job.name, "at": within[:UPCOMING_PER_JOB],
                      "more": len(within) > UPCOMING_PER_JOB})  # fmt: skip
    return found, budget_warnings(budget)


@extend_schema(parameters=[DashboardQuerySerializer], responses=DashboardSerializer)
@api_view(["GET"])
def dashboard_figures(request: Request) -> Response:
    """The fleet at a glance, limited to the jobs the caller may view; cheap to poll."""
    query = DashboardQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    window = query.validated_data["window"]
    now = timezone.now()
    since = now - dashboard.WINDOWS[window]
    user = request.user
    body = {
        "generated_at": now,
        "window": window,
        **slow_figures(user, now, window),
        "running": dashboard.running_now(user),
        "failures": dashboard.recent_failures(user, since),
    }
    return Response(DashboardSerializer(body).data)


def slow_figures(user: Any, now: datetime, window: str) -> dict[str, Any]:
    """Runs per hour, the jobs' health and the timeline: the reads whose cost grows with
    the window's runs and the plans of fire times (tens to hundreds of milliseconds at a
    million runs), and which move slowly. Kept ``DASHBOARD_CACHE_SECONDS`` per user and
    window in the shared cache, so however many dashboards are open, each user's costs
    one computation a period; the running runs and failures are read at every call."""
    key = f"dashboard:{user.pk}:{window}"
    seconds = settings.DASHBOARD_CACHE_SECONDS
    found = cache.get(key) if seconds else None
    if found is None:
        fires, warnings = upcoming(user, now)
        found = {
            "figures_at": now,
            "hours": dashboard.runs_per_hour(user, now),
            "jobs": dashboard.job_health(user, now - dashboard.WINDOWS[window]),
            "upcoming": fires,
            "warnings": warnings,
        }
        if seconds:
            cache.set(key, found, seconds)
    return found
