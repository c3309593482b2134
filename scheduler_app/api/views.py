"""API views: function-sized, with the state changes in scheduler_app.services."""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import django_filters
import redis
from django import forms
from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import (
    action,
    api_view,
    authentication_classes,
    permission_classes,
)
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.celery import app as celery_app
from scheduler_app import access, schedules, services, tokens
from scheduler_app.api.auth import LoginAccountThrottle, LoginAddressThrottle
from scheduler_app.api.pagination import RunPagination
from scheduler_app.api.permissions import HasRoleForAction
from scheduler_app.api.serializers import (
    LISTED_JOB_NAME,
    LISTED_OWNER,
    AlertSerializer,
    CalendarSerializer,
    JobSerializer,
    JobTemplateSerializer,
    LogQuerySerializer,
    NextRunsQuerySerializer,
    PreviewSerializer,
    RunLogSerializer,
    RunSerializer,
    TokenRequestSerializer,
    TokenSerializer,
    attach_dependencies,
)
from scheduler_app.models import Alert, Calendar, Job, JobTemplate, Node, Run
from scheduler_app.stats import job_counts, run_figures


def iso(moment: datetime) -> str:
    return moment.astimezone(schedules.UTC).isoformat().replace("+00:00", "Z")


logger = logging.getLogger(__name__)


def jobs_of(user: Any) -> QuerySet[Job]:
    return access.viewable_jobs(user).select_related("owner")


class OwnedViewSetMixin:
    """Requests see only the rows of ``queryset`` the caller may view (others are 404),
    and act on one as their role allows (else 403); ``access_via`` is the path to the row
    whose owner and team decide. The schema generator, which has no user, sees none."""

    queryset: QuerySet[Any]
    access_via = ""
    permission_classes = [HasRoleForAction]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset.none()
        return access.visible(self.request.user, self.queryset.all(), self.access_via)  # type: ignore[attr-defined]


# The fire times GET /next-runs/ may look at over all the caller's jobs together (100
# jobs' 100 fire times each, and room for skips), and the time any request's may take.
MAX_REQUEST_STEPS = 3 * schedules.MAX_PLAN_STEPS
REQUEST_SECONDS = schedules.PLAN_SECONDS


def request_budget(steps: int = schedules.MAX_PLAN_STEPS) -> schedules.Budget:
    return schedules.Budget(steps, seconds=REQUEST_SECONDS)


def job_upcoming(
    job: Job, now: datetime, count: int, budget: schedules.Budget | None = None
) -> list[datetime]:
    """The job's next ``count`` runs: the fire times beat will send, after window and calendar."""
    if not job.is_scheduled:
        return []
    runs, _ = job.timing().plan(max(job.schedule_reference, now), count, budget)
    return runs


def budget_warnings(budget: schedules.Budget) -> list[str]:
    """What to tell when a request's plans stopped short of what was asked."""
    if not budget.exhausted:
        return []
    return [
        "Stopped early: looking further for fire times would take longer than a request "
        "may (a window or calendar skips most of them?); fewer runs than asked are shown."
    ]


def plan_warnings(
    budget: schedules.Budget, runs: list[datetime], count: int, spec: dict[str, Any],
    end_at: datetime | None,
) -> list[str]:  # fmt: skip
    """Why a plan gave fewer runs than asked: its request's budget ran out, or (a
    recurring schedule without an end) the rest lie past the horizon, which no
    computation crosses."""
    if budget.exhausted:
        return budget_warnings(budget)
    members = spec["schedules"] if spec["type"] == "union" else [spec]
    recurring = any(member["type"] not in ("once", "manual") for member in members)
    if len(runs) >= count or not recurring or end_at is not None:
        return []
    return [f"No fire time at or after {iso(schedules.HORIZON)} is computed."]


class StrictBooleanField(forms.NullBooleanField):
    """``true`` or ``false`` (also ``1``/``0``, ``True``/``False``); absent or empty is no
    filter; anything else is a 400, not quietly no filter, as the schema's boolean says."""

    widget = forms.TextInput  # NullBooleanSelect would read any other word as "no filter"
    WORDS = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        try:
            return self.WORDS[str(value).lower()]
        except KeyError:
            raise forms.ValidationError("must be true or false.", code="invalid") from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictChoiceField(django_filters.fields.ChoiceField):
    """One of the choices; present but empty is a 400 (the schema's enum has no ""),
    absent is no filter."""

    def clean(self, value: Any) -> Any:
        if value == "":
            choices = ", ".join(str(key) for key, _ in self.choices if key != "")
            raise forms.ValidationError(f"must be one of: {choices}.", code="invalid_choice")
        return super().clean(value)


class StrictChoiceFilter(django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class StrictFilterSet(django_filters.FilterSet):
    """Filters on a field with choices (a status, a kind) refuse an empty value."""

    @classmethod
    def filter_for_lookup(cls, field: Any, lookup_type: str) -> tuple[Any, dict[str, Any]]:
        filter_class, params = super().filter_for_lookup(field, lookup_type)
        if filter_class is django_filters.ChoiceFilter:
            filter_class = StrictChoiceFilter
        return filter_class, params


class JobFilter(StrictFilterSet):
    status = StrictChoiceFilter(choices=Job.Status.choices, method="filter_status")
    enabled = StrictBooleanFilter()
    search = django_filters.CharFilter(method="filter_search")
    name = django_filters.CharFilter(help_text="The exact name (the CLI finds a job by it).")

    class Meta:
        model = Job
        fields = ["name", "kind", "queue", "enabled", "last_status", "status", "search"]

    def filter_status(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        if value == Job.Status.COMPLETED:
            return queryset.filter(completed_at__isnull=False)
        return queryset.filter(completed_at__isnull=True, enabled=value == Job.Status.ACTIVE)

    def filter_search(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(django_filters.NumberFilter):
    """A row's id, whole; by number, not a choice among all rows, so that another
    user's row and a missing one are both simply no rows: the filter tells nobody
    which ids exist."""

    field_class = forms.IntegerField


class AlertFilter(StrictFilterSet):
    job = IdFilter(field_name="job_id", min_value=1, max_value=2**63 - 1)
    open = StrictBooleanFilter(field_name="resolved_at", lookup_expr="isnull")

    class Meta:
        model = Alert
        fields = ["job", "kind", "open"]


class RunFilter(StrictFilterSet):
    job = IdFilter(field_name="job_id", min_value=1, max_value=2**63 - 1)
    node = django_filters.CharFilter(
        method="filter_node", help_text="A node's name: the runs it ran or was sent (its history)."
    )

    class Meta:
        model = Run
        fields = ["job", "status", "trigger", "worker", "node"]

    def filter_node(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        hostname = Node.objects.filter(name=value).values_list("hostname", flat=True).first()
        hostname = hostname or value
        return queryset.filter(Q(node=hostname) | Q(worker=hostname))


class JobViewSet(OwnedViewSetMixin, viewsets.ModelViewSet):
    # A page of jobs in three queries: the count, the jobs (with their owners' names
    # and the calendars their schedule descriptions read), and all their dependencies.
    queryset = Job.objects.select_related("owner", "calendar")
    serializer_class = JobSerializer
    filterset_class = JobFilter

    def get_queryset(self) -> QuerySet[Job]:
        """A job shown alone has its owner and dependencies read with it (a page's
        dependencies: see paginate_queryset); a job's runs and next runs show neither."""
        jobs = super().get_queryset()
        if self.action == "list":  # the owners' names, not their rows
            owner = {LISTED_OWNER: F("owner__username")}
            return jobs.select_related(None).select_related("calendar").annotate(**owner)
        if self.action in ("runs", "next_runs"):
            return jobs
        return jobs.prefetch_related("dependencies")

    def paginate_queryset(self, queryset: QuerySet[Job]) -> list[Job] | None:
        page = super().paginate_queryset(queryset)
        if page and self.action == "list":
            attach_dependencies(page)
        return page

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        job = services.set_enabled(self.get_object(), enabled=False)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        job = services.set_enabled(self.get_object(), enabled=True)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        run = services.create_manual_run(self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=RunPagination)
    def runs(self, request: Request, pk: str | None = None) -> Response:
        runs = self.get_object().runs.all()  # each run's job is this one, not read again
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(
        parameters=[NextRunsQuerySerializer],
        responses=inline_serializer(
            "NextRuns",
            {
                "next_runs": serializers.ListField(child=serializers.DateTimeField()),
                "warnings": serializers.ListField(child=serializers.CharField()),
            },
        ),
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="next-runs", filterset_class=None)
    def next_runs(self, request: Request, pk: str | None = None) -> Response:
        query = NextRunsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        job = self.get_object()
        budget, count = request_budget(), query.validated_data["count"]
        times = job_upcoming(job, timezone.now(), count, budget)
        warnings = (
            plan_warnings(budget, times, count, job.schedule, job.end_at)
            if job.is_scheduled
            else []
        )
        return Response({"next_runs": [iso(t) for t in times], "warnings": warnings})


@extend_schema_view(
    destroy=extend_schema(
        responses={
            204: None,
            400: OpenApiResponse(description="Jobs still use the calendar."),
        }
    )
)
class CalendarViewSet(OwnedViewSetMixin, viewsets.ModelViewSet):
    """Exclusion calendars: dates (holidays, freezes) that jobs skip or move away from."""

    queryset = Calendar.objects.select_related("owner")
    serializer_class = CalendarSerializer

    def perform_update(self, serializer: CalendarSerializer) -> None:
        calendar = serializer.save()
        for job in calendar.jobs.all():
            job.save(update_fields=[])  # its next run may move with the dates

    def perform_destroy(self, instance: Calendar) -> None:
        if instance.jobs.exists():
            names = ", ".join(instance.jobs.values_list("name", flat=True)[:5])
            raise serializers.ValidationError(
                {"calendar": [f"still used by jobs: {names}; change them first."]}
            )
        instance.delete()


class JobTemplateViewSet(OwnedViewSetMixin, viewsets.ModelViewSet):
    """Job templates; ``instantiate`` makes a job from one, with overrides."""

    queryset = JobTemplate.objects.select_related("owner")
    serializer_class = JobTemplateSerializer

    @extend_schema(request=JobSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def instantiate(self, request: Request, pk: str | None = None) -> Response:
        """A new job: the template's defaults, with the fields of the body on top."""
        template = self.get_object()
        body = JobSerializer(data={**template.defaults, **request.data},
                             context={"request": request})  # fmt: skip
        body.is_valid(raise_exception=True)
        job = body.save()
        return Response(JobSerializer(job, context={"request": request}).data, status=201)


# Up to this many jobs, a caller's runs are asked for by their jobs' ids (RunViewSet).
FEW_JOBS = 100
# Who was seen to view more, until when (monotonic seconds), by user id: they skip the
# query of their job ids for a while. Only the plan depends on it, never which runs
# are shown (the access rules are joined then), so an old answer costs no more than
# a slower page.
MANY_JOBS_FOR = 60.0
_many_jobs_until: dict[int, float] = {}


def few_jobs_of(user: Any) -> list[int] | None:
    """The ids of the jobs the user may view when there are FEW_JOBS or fewer, else None."""
    if _many_jobs_until.get(user.pk, 0.0) > time.monotonic():
        return None
    few = list(access.viewable_jobs(user).values_list("id", flat=True)[: FEW_JOBS + 1])
    if len(few) <= FEW_JOBS:
        return few
    if len(_many_jobs_until) >= 10_000:  # bounded: forget them all now and then
        _many_jobs_until.clear()
    _many_jobs_until[user.pk] = time.monotonic() + MANY_JOBS_FOR
    return None


class RunViewSet(OwnedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Runs, newest first, a page at a time by cursor (no count: see RunPagination);
    each filter has an index that gives its runs in this order."""

    # A run shown alone (retrieve, cancel) has its job with it: the access rules read
    # its owner and team, and a Job loads its timing fields. Of the rest of the job's
    # row (JSON fields, a dozen dates) nothing is shown.
    queryset = Run.objects.select_related("job").only(
        *(field.name for field in Run._meta.concrete_fields),
        *(f"job__{name}" for name in ("name", "schedule", "timezone", "enabled", "owner", "team")),
    )
    access_via = "job__"
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = RunPagination

    def get_queryset(self) -> QuerySet[Run]:
        """A page of runs reads its jobs' names only, not their rows (a third of the
        page's time went to making Job objects). A caller who may view a few jobs
        names them (``job_id IN (...)``) rather than joining the access rules: the
        database then knows how few runs are theirs, and reads them by each job's index
        instead of walking every run newest first for theirs (at a million runs, a
        viewer of one job without runs waited 600 ms for an empty page; now 7 ms)."""
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        runs = Run.objects.annotate(**{LISTED_JOB_NAME: F("job__name")})
        user = self.request.user
        if not user.is_superuser and (few := few_jobs_of(user)) is not None:
            return runs.filter(job_id__in=few)
        return access.visible(user, runs, self.access_via)

    @extend_schema(
        parameters=[LogQuerySerializer],
        responses=RunLogSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def log(self, request: Request, pk: str | None = None) -> Response:
        """The run's output so far (saved about every second while it runs).

        Follow it by passing the ``next_offset`` of one answer as ``offset`` to the next.
        """
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        context = {"offset": query.validated_data["offset"]}
        return Response(RunLogSerializer(self.get_object(), context=context).data)

    @extend_schema(
        request=None,
        responses={
            200: RunSerializer,
            409: OpenApiResponse(description="The run has already ended: nothing to cancel."),
        },
        filters=False,
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not services.cancel_run(run):
            return Response(
                {"detail": f"run {run.id} has already ended ({run.status}); nothing to cancel."},
                status=status.HTTP_409_CONFLICT,
            )
        run.refresh_from_db()
        return Response(RunSerializer(run).data)


class AlertViewSet(OwnedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """The dead-man's switch: missed slots, late starts, long runs, a scheduler down.

    An alert is open while its condition holds; ``?open=true`` lists those. The
    scheduler's own alerts (``scheduler_down``) are shown to superusers only."""

    queryset = Alert.objects.select_related("job")
    access_via = "job__"
    serializer_class = AlertSerializer
    filterset_class = AlertFilter


@extend_schema(
    request=PreviewSerializer,
    responses=inline_serializer(
        "Preview",
        {
            "schedule": serializers.JSONField(),
            "timezone": serializers.CharField(),
            "description": serializers.CharField(),
            "next_runs": serializers.ListField(child=serializers.CharField()),
            "next_runs_local": serializers.ListField(child=serializers.CharField()),
            "skipped": serializers.ListField(child=serializers.DictField()),
            "warnings": serializers.ListField(child=serializers.CharField()),
        },
    ),
)
@api_view(["POST"])
def preview_schedule(request: Request) -> Response:
    """The next runs of a schedule (UTC and local), what policy skips, and what to watch for."""
    body = PreviewSerializer(data=request.data, context={"request": request})
    body.is_valid(raise_exception=True)
    data = body.validated_data
    now = timezone.now()
    zone = schedules.get_zone(data["timezone"])
    fires = schedules.fire_schedule(
        data["schedule"], zone, now, start_at=data.get("start_at"), end_at=data.get("end_at"),
        jitter=schedules.job_jitter(data["jitter"], "preview"),
    )  # fmt: skip
    timing = schedules.Timing.with_policies(
        fires, zone, data.get("window"), data.get("calendar"), data["calendar_policy"]
    )
    budget = request_budget()
    runs, skipped = timing.plan(now, data["count"], budget)
    horizon = max([now + timedelta(days=366), *runs])
    warnings = schedules.dst_warnings(data["schedule"], zone, now, horizon)
    warnings += plan_warnings(budget, runs, data["count"], data["schedule"], data.get("end_at"))
    if not runs and data["schedule"]["type"] != "manual":
        bound = " before end_at" if data.get("end_at") else ""
        warnings.append(
            f"This schedule never runs{bound}"
            + (": every fire time is skipped by the window or calendar." if skipped else ".")
        )
    return Response(
        {
            "schedule": data["schedule"],
            "timezone": zone.key,
            "description": timing.describe(),
            "next_runs": [iso(t) for t in runs],
            "next_runs_local": [t.astimezone(zone).isoformat() for t in runs],
            "skipped": [
                {
                    "at": iso(s.fire_time),
                    "local": s.fire_time.astimezone(zone).isoformat(),
                    "reason": s.skip_reason,
                }
                for s in skipped[:20]
            ],
            "warnings": warnings,
        }
    )


@extend_schema(
    parameters=[NextRunsQuerySerializer],
    responses=inline_serializer(
        "UpcomingRuns",
        {
            "next_runs": serializers.ListField(
                child=inline_serializer(
                    "UpcomingRun",
                    {
                        "job": serializers.IntegerField(),
                        "job_name": serializers.CharField(),
                        "at": serializers.DateTimeField(),
                    },
                )
            ),
            "warnings": serializers.ListField(child=serializers.CharField()),
        },
    ),
)
@api_view(["GET"])
def upcoming_runs(request: Request) -> Response:
    """The next fire times over all the caller's scheduled jobs, soonest first.

    The first N fire times can only come from the N jobs that fire soonest, so
    only those are evaluated, however many jobs there are.
    """
    query = NextRunsQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    count = query.validated_data["count"]
    now = timezone.now()
    jobs = jobs_of(request.user).filter(next_run_at__isnull=False).order_by("next_run_at")
    jobs = jobs.select_related("calendar")[:count]  # each job's timing reads its calendar
    budget = request_budget(MAX_REQUEST_STEPS)
    streams = [
        [(t, job.id, job.name) for t in job_upcoming(job, now, count, budget)] for job in jobs
    ]
    merged = heapq.merge(*streams)
    upcoming = [
        {"job": job_id, "job_name": name, "at": iso(t)}
        for t, job_id, name in itertools.islice(merged, count)
    ]
    return Response({"next_runs": upcoming, "warnings": budget_warnings(budget)})


STATS = inline_serializer(
    "Stats",
    {
        "jobs": inline_serializer(
            "JobCounts",
            {
                name: serializers.IntegerField(min_value=0)
                for name in ("total", "active", "paused", "completed")
            },
        ),
        "runs": inline_serializer(
            "RunCounts",
            {
                "total": serializers.IntegerField(min_value=0),
                "by_status": serializers.DictField(child=serializers.IntegerField(min_value=0)),
            },
        ),
        "success_rate": serializers.FloatField(
            allow_null=True, help_text="Succeeded over finished runs; null before any finished."
        ),
        "duration_seconds": inline_serializer(
            "Durations",
            {
                "average": serializers.FloatField(allow_null=True),
                "longest": serializers.FloatField(allow_null=True),
            },
        ),
    },
)


@extend_schema(responses=STATS)
@api_view(["GET"])
def stats(request: Request) -> Response:
    """Over all runs, those retention deleted included; from per-job totals, not the runs."""
    jobs = jobs_of(request.user)
    by_status, durations = run_figures(jobs)
    finished = sum(by_status.get(s, 0) for s in (Run.Status.SUCCEEDED, *Run.FAILURES))
    return Response(
        {
            "jobs": job_counts(jobs),
            "runs": {"total": sum(by_status.values()), "by_status": by_status},
            "success_rate": (by_status.get(Run.Status.SUCCEEDED, 0) / finished)
            if finished
            else None,
            "duration_seconds": durations,
        }
    )


HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(help_text="ok or degraded"),
        "database": serializers.CharField(),
        "redis": serializers.CharField(),
        "workers": serializers.IntegerField(min_value=0),
        "beat": serializers.CharField(help_text="ok or down"),
    },
)


@extend_schema(
    auth=[],
    responses={
        200: HEALTH,
        503: OpenApiResponse(HEALTH, description="The database or Redis does not answer."),
    },
)
@api_view(["GET"])
@authentication_classes([])  # no credentials read: it answers with the database away too
@permission_classes([permissions.AllowAny])
def health(request: Request) -> Response:
    """Liveness of each part: 200 when the database and Redis answer, 503 otherwise.

    Anyone may ask, so a failure is named by its kind only: the driver's message
    would tell a stranger the database's host, port or file. The logs have it."""
    report: dict[str, Any] = {"database": "ok", "redis": "ok", "workers": 0, "beat": "down"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        logger.warning("health: the database does not answer: %s", exc)
        report["database"] = f"error: {type(exc).__name__}"
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        client.ping()
        lock_key = settings.CELERY_REDBEAT_KEY_PREFIX + ":lock"
        report["beat"] = "ok" if client.exists(lock_key) else "down"
        report["workers"] = len(celery_app.control.ping(timeout=0.5))
    except redis.RedisError as exc:
        logger.warning("health: Redis does not answer: %s", exc)
        report["redis"] = f"error: {type(exc).__name__}"
    healthy = report["database"] == "ok" and report["redis"] == "ok"
    report = {"status": "ok" if healthy else "degraded", **report}
    return Response(report, status=status.HTTP_200_OK if healthy else 503)


class TokenView(APIView):
    """POST: a username and password for the user's API token. DELETE: revoke it."""

    # Logging in reads no credentials but the password: a token in Authorization must not
    # turn the attempt into a signed-in user's, whose throttles are another's.
    def logging_in(self) -> bool:
        return getattr(self.request, "method", None) == "POST"  # None: the schema's mock

    def get_authenticators(self) -> list[Any]:
        return [] if self.logging_in() else super().get_authenticators()

    def get_permissions(self) -> list[Any]:
        return [permissions.AllowAny()] if self.logging_in() else super().get_permissions()

    def get_throttles(self) -> list[Any]:
        if self.logging_in():
            return [LoginAddressThrottle(), LoginAccountThrottle()]
        return super().get_throttles()

    @extend_schema(
        summary="Log in: a username and password for an API token",
        description=(
            "Returns the user's token (a new one if theirs expired). Throttled per client "
            "address and per username, whatever credentials the request carries; after "
            "LOGIN_FAILURE_LIMIT failures the account is locked for a time that doubles with "
            "each further failure (429 with Retry-After; the right password is refused too)."
        ),
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Wrong username or password."),
            429: OpenApiResponse(description="Too many attempts: see Retry-After."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            locked = getattr(request, "login_locked_for", None)
            if locked:
                raise Throttled(wait=locked, detail="Too many failed logins for this account.")
            raise serializers.ValidationError(serializer.errors)
        return Response({"token": tokens.issue(serializer.validated_data["user"]).key})

    @extend_schema(
        summary="Log out: revoke the caller's API token",
        request=None,
        responses={204: OpenApiResponse(description="The token no longer works.")},
    )
    def delete(self, request: Request) -> Response:
        tokens.revoke_all(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotate(APIView):
    @extend_schema(
        summary="Replace the caller's API token with a new one",
        description="The old token stops working at once.",
        request=None,
        responses=TokenSerializer,
    )
    def post(self, request: Request) -> Response:
        return Response({"token": tokens.rotate(request.user).key})
