"""The figures of the dashboard (GET /api/v1/dashboard/): each a time-bounded read on an
index of the runs table (migration 0017), so a million runs cost no more than those of
the window.

- runs per hour by status: the window's runs by ``queued_at`` (``run_recent_idx``);
- per job: the window's runs grouped by job, the jobs with most failures, then most
  runs; their p95 duration by nearest rank, one indexed read per job
  (``run_job_recent_idx``): ``ORDER BY duration OFFSET k LIMIT 1``, the same SQL on
  SQLite and PostgreSQL, where PostgreSQL's percentile_cont has no SQLite twin;
- running now and recent failures: by status (``run_status_idx``), newest first, a few,
  without their output (the page follows a running run's through GET /runs/{id}/log/,
  from the offset it last read).

Every read is limited to the runs of jobs the user may view (scheduler_app.access).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncHour

from scheduler_app import access, schedules
from scheduler_app.models import Run

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
HOURS = 24
TOP_JOBS = 10
RUNNING_SHOWN = 10
FAILURES_SHOWN = 10
ERROR_SHOWN = 500  # characters of a failure's error


@dataclass(frozen=True)
class JobHealth:
    job: int
    job_name: str
    runs: int
    succeeded: int
    failed: int
    success_rate: float | None
    p95_seconds: float | None


def runs_of(user: Any) -> QuerySet[Run]:
    return access.visible(user, Run.objects.all(), "job__")


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(schedules.UTC).replace(minute=0, second=0, microsecond=0)


def runs_per_hour(user: Any, now: datetime) -> list[dict[str, Any]]:
    """The last ``HOURS`` hours (the current one last, hours without runs included), each
    with its runs by status, by the hour they were queued in (UTC)."""
    first = hour_start(now) - timedelta(hours=HOURS - 1)
    rows = (
        runs_of(user)
        .filter(queued_at__gte=first)
        .annotate(hour=TruncHour("queued_at", tzinfo=schedules.UTC))
        .values("hour", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    hours = {first + timedelta(hours=i): {} for i in range(HOURS)}
    for row in rows:
        hours.setdefault(hour_start(row["hour"]), {})[row["status"]] = row["n"]
    return [{"hour": hour, "by_status": counts} for hour, counts in sorted(hours.items())]


def p95(runs: QuerySet[Run], timed: int) -> float | None:
    """The nearest-rank 95th percentile of the runs' durations (``timed`` of them have one)."""
    if not timed:
        return None
    rank = math.ceil(0.95 * timed) - 1
    durations = runs.filter(duration__isnull=False).order_by("duration")
    return durations.values_list("duration", flat=True)[rank]


def job_health(user: Any, since: datetime) -> list[JobHealth]:
    """The jobs with most failures (then most runs) since ``since``: their runs, success
    rate (succeeded over succeeded and failed, as /stats/) and p95 duration."""
    window = runs_of(user).filter(queued_at__gte=since)
    rows = (
        window.values("job_id", "job__name")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=Run.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status__in=Run.FAILURES)),
            timed=Count("duration", filter=Q(status__in=Run.FINISHED)),
        )
        .order_by("-failed", "-runs", "job_id")[:TOP_JOBS]
    )
    found = []
    for row in rows:
        ended = row["succeeded"] + row["failed"]
        finished = window.filter(job_id=row["job_id"], status__in=Run.FINISHED)
        found.append(
            JobHealth(
                job=row["job_id"], job_name=row["job__name"], runs=row["runs"],
                succeeded=row["succeeded"], failed=row["failed"],
                success_rate=row["succeeded"] / ended if ended else None,
                p95_seconds=p95(finished, row["timed"]),
            )
        )  # fmt: skip
    return found


# Read at every poll of every open dashboard: never a run's output (up to
# SCHEDULER_OUTPUT_LIMIT each), which the page follows through the log's offsets.
UNSHOWN = ("output", "result")


def running_now(user: Any) -> list[Run]:
    runs = runs_of(user).filter(status=Run.Status.RUNNING).select_related("job")
    return list(runs.defer(*UNSHOWN).order_by("-queued_at", "-id")[:RUNNING_SHOWN])


def recent_failures(user: Any, since: datetime) -> list[Run]:
    runs = runs_of(user).filter(status__in=Run.FAILURES, queued_at__gte=since)
    runs = runs.select_related("job").defer(*UNSHOWN)
    return list(runs.order_by("-queued_at", "-id")[:FAILURES_SHOWN])
