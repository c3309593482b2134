"""The figures of GET /api/v1/stats/: a few small indexed reads, however many runs there are.

Finished runs come from :class:`RunTotal` (kept by database triggers, one row per job
and status); the runs still going (queued, waiting, running: few at any time) are
counted from the runs table by its status index.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from scheduler_app.models import Job, Run, RunTotal


def job_counts(jobs: QuerySet[Job]) -> dict[str, int]:
    """The jobs by state, in one query."""
    going = Q(completed_at__isnull=True)
    return jobs.order_by().aggregate(
        total=Count("id"),
        active=Count("id", filter=going & Q(enabled=True)),
        paused=Count("id", filter=going & Q(enabled=False)),
        completed=Count("id", filter=~going),
    )


def run_figures(jobs: QuerySet[Job]) -> tuple[dict[str, int], dict[str, float | None]]:
    """Runs of ``jobs`` by status, and their average and longest duration: all runs ever,
    those retention deleted included."""
    totals = RunTotal.objects.filter(job__in=jobs.values("id")).values("status").order_by()
    rows: list[dict[str, Any]] = list(
        totals.annotate(
            n=Sum("count"), total=Sum("duration_sum"), timed=Sum("duration_count"),
            longest=Max("duration_max"),
        )
    )  # fmt: skip
    going = Run.objects.filter(job__in=jobs.values("id"), status__in=Run.PENDING)
    by_status = Counter({row["status"]: row["n"] for row in rows})
    by_status.update(dict(going.values_list("status").annotate(n=Count("id")).order_by()))
    timed = sum(row["timed"] for row in rows)
    longest = max((row["longest"] for row in rows if row["longest"] is not None), default=None)
    average = sum(row["total"] for row in rows) / timed if timed else None
    return dict(by_status), {"average": average, "longest": longest}
