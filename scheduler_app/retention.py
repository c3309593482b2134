"""Run retention: which finished runs to delete, and deleting them without losing the figures.

Finished runs go after ``RUN_RETENTION_DAYS`` or beyond the newest
``RUN_RETENTION_PER_JOB`` of their job; failed ones (``Run.FAILURES``) by their
own ``*_FAILED`` limits, counted apart. 0 means no limit. A run that has not
finished is never deleted; a fan-out parent is judged for its whole family and
its children go with it (never alone), once they have all finished.

Before a batch is deleted its runs are added to their jobs' :class:`RunTally`
rows, in the same transaction: a record of what was deleted. (The figures over all
runs, GET /api/v1/stats/, come from :class:`RunTotal`, which deleting leaves as it is.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Count, Exists, F, Max, OuterRef, QuerySet, Sum, Value, Window
from django.db.models.functions import Coalesce, Greatest, RowNumber
from django.utils import timezone

from scheduler_app.models import Alert, Run, RunTally

BATCH_SIZE = 500
# A batch is one transaction holding its write lock, and one list of ids in a query.
MAX_BATCH_SIZE = 10_000
REASONS = ("age", "per_job")
# Status groups, each with its own limits.
GROUPS = {
    "failed": tuple(Run.FAILURES),
    "other": tuple(status for status in Run.FINISHED if status not in Run.FAILURES),
}


@dataclass(frozen=True)
class Limits:
    days: int  # 0: no age limit
    per_job: int  # 0: no count limit


def limits() -> dict[str, Limits]:
    """The limits of each status group, from the settings."""
    found = {
        "failed": Limits(settings.RUN_RETENTION_DAYS_FAILED, settings.RUN_RETENTION_PER_JOB_FAILED),
        "other": Limits(settings.RUN_RETENTION_DAYS, settings.RUN_RETENTION_PER_JOB),
    }
    if any(limit.days < 0 or limit.per_job < 0 for limit in found.values()):
        raise ImproperlyConfigured("RUN_RETENTION_* settings must be 0 (no limit) or more.")
    return found


def judged(statuses: tuple[str, ...]) -> QuerySet[Run]:
    """Runs that may go, for their own and their family's sake: finished, in ``statuses``,
    not a fan-out child (it goes with its parent), with no child still going."""
    going = Run.objects.filter(parent=OuterRef("pk")).exclude(status__in=Run.FINISHED)
    return Run.objects.filter(parent__isnull=True, status__in=statuses).filter(~Exists(going))


def beyond_newest(runs: QuerySet[Run], keep: int) -> QuerySet[Run]:
    """The runs after the newest ``keep`` of each job (by finished_at, then id)."""
    newest_first = [F("finished_at").desc(nulls_last=True), F("id").desc()]
    rank = Window(RowNumber(), partition_by=[F("job_id")], order_by=newest_first)
    return runs.annotate(rank=rank).filter(rank__gt=keep)


def deletable(now: datetime) -> dict[tuple[str, str], QuerySet[Run]]:
    """The runs to delete, by (reason, status group); children not included (they go
    with their parent). A run past both limits is counted under "age" only."""
    plan = {}
    for group, limit in limits().items():
        runs = judged(GROUPS[group])
        if limit.days:
            cutoff = now - timedelta(days=limit.days)
            plan["age", group] = runs.filter(finished_at__lt=cutoff)
            # Only the oldest go, so the ranks of the runs that stay do not change.
            runs = runs.exclude(finished_at__lt=cutoff)
        if limit.per_job:
            plan["per_job", group] = beyond_newest(runs, limit.per_job)
    return plan


@dataclass
class Report:
    """What a prune deleted (or would delete, ``dry_run``)."""

    dry_run: bool = False
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, group): runs
    children: int = 0  # fan-out children deleted with their parents
    batches: int = 0

    def by(self, index: int, keys: tuple[str, ...]) -> dict[str, int]:
        return {key: sum(n for k, n in self.runs.items() if k[index] == key) for key in keys}

    @property
    def by_reason(self) -> dict[str, int]:
        return self.by(0, REASONS)

    @property
    def by_group(self) -> dict[str, int]:
        return self.by(1, tuple(GROUPS))

    @property
    def total(self) -> int:
        """Rows deleted: the judged runs and their children."""
        return sum(self.runs.values()) + self.children

    def describe(self) -> str:
        reasons = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in self.by_reason.items())
        groups = ", ".join(f"{k} {n}" for k, n in self.by_group.items())
        return f"by reason: {reasons}; by status: {groups}; fan-out children: {self.children}"


def prune(
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Delete the runs the retention settings let go, ``batch_size`` rows at a time (a
    run and its children are never split), each batch in its own short transaction so
    no lock is held for long; ``progress`` is called after each batch."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"the batch size must be from 1 to {MAX_BATCH_SIZE}.")
    report = Report(dry_run=dry_run)
    for (reason, group), runs in deletable(now or timezone.now()).items():
        if dry_run:
            report.runs[reason, group] += runs.count()
            report.children += Run.objects.filter(parent__in=runs.values("id")).count()
            continue
        # Deleted rows leave the query, so asking again gives the next batch.
        while family := next_batch(runs, batch_size):
            deleted = delete_batch(family)
            report.runs[reason, group] += len(deleted & set(family))
            report.children += len(deleted - set(family))
            report.batches += 1
            if progress:
                progress(report)
    return report


def prune_alerts(now: datetime | None = None) -> int:
    """Delete the alerts resolved longer ago than failed runs are kept; open ones stay."""
    days = settings.RUN_RETENTION_DAYS_FAILED
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    _, deleted = Alert.objects.filter(resolved_at__lt=cutoff).delete()
    return deleted.get(Alert._meta.label, 0)


def next_batch(runs: QuerySet[Run], batch_size: int) -> dict[int, list[int]]:
    """Up to ``batch_size`` rows of ``runs`` as {run id: its children's ids}; at least
    one run, however many children it has."""
    ids = list(runs.order_by("id").values_list("id", flat=True)[:batch_size])
    children = defaultdict(list)
    for parent_id, child_id in Run.objects.filter(parent_id__in=ids).values_list("parent", "id"):
        children[parent_id].append(child_id)
    batch: dict[int, list[int]] = {}
    rows = 0
    for run_id in ids:
        rows += 1 + len(children[run_id])
        if batch and rows > batch_size:
            break
        batch[run_id] = children[run_id]
    return batch


def delete_batch(family: dict[int, list[int]]) -> set[int]:
    """Fold these runs into their tallies and delete them, in one transaction; the ids
    deleted (a concurrent prune may have taken some first)."""
    ids = [*family, *(child for children in family.values() for child in children)]
    with transaction.atomic():
        # Locked first, so that two prunes never count the same run twice; in one order
        # (here and in fold), so that they cannot deadlock.
        rows = Run.objects.select_for_update().filter(id__in=ids).order_by("id")
        locked = list(rows.values_list("id", flat=True))
        fold(locked)
        Run.objects.filter(id__in=locked).delete()
    return set(locked)


def fold(run_ids: list[int]) -> None:
    """Add these runs to their jobs' tallies (call it in the transaction that deletes them)."""
    runs = Run.objects.filter(id__in=run_ids).values("job_id", "status")
    sums = list(
        runs.order_by("job_id", "status").annotate(
            n=Count("id"), total=Sum("duration"), timed=Count("duration"), longest=Max("duration")
        )
    )
    tallies = [RunTally(job_id=row["job_id"], status=row["status"]) for row in sums]
    RunTally.objects.bulk_create(tallies, ignore_conflicts=True)
    for row in sums:
        change = {
            "count": F("count") + row["n"],
            "duration_sum": F("duration_sum") + (row["total"] or 0.0),
            "duration_count": F("duration_count") + row["timed"],
        }
        if row["longest"] is not None:
            longest = Value(row["longest"])
            change["duration_max"] = Greatest(Coalesce("duration_max", longest), longest)
        RunTally.objects.filter(job_id=row["job_id"], status=row["status"]).update(**change)
