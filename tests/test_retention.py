"""Run retention: what goes (age, per job, failed apart), what never does, and the
figures that survive it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.celery import app
from scheduler_app import payloads, retention
from scheduler_app.models import Job, Run, RunTally
from tests.helpers import make_job

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_seconds = itertools.count()


@pytest.fixture(autouse=True)
def no_limits(settings) -> None:
    """Every limit off: each test turns on the ones it is about."""
    settings.RUN_RETENTION_DAYS = 0
    settings.RUN_RETENTION_PER_JOB = 0
    settings.RUN_RETENTION_DAYS_FAILED = 0
    settings.RUN_RETENTION_PER_JOB_FAILED = 0


@pytest.fixture
def job(owner) -> Job:
    return make_job(owner, name="every-10s")


def run(job: Job, days_ago: float, status: str = "succeeded", **fields: Any) -> Run:
    """A run of ``job`` that finished ``days_ago`` days before NOW, lasting a second."""
    finished = NOW - timedelta(days=days_ago)
    fields = {"finished_at": finished, "duration": 1.0, **fields}
    made = Run.objects.create(
        job=job,
        trigger="schedule",
        scheduled_for=finished - timedelta(seconds=next(_seconds)),
        status=status,
        **fields,
    )
    # queued_at is set on insert: backdated like the rest.
    Run.objects.filter(id=made.id).update(queued_at=finished)
    return made


def left(*runs: Run) -> list[bool]:
    """Whether each of ``runs`` is still there."""
    ids = set(Run.objects.values_list("id", flat=True))
    return [r.id in ids for r in runs]


def test_finished_runs_older_than_the_age_limit_go(settings, job):
    settings.RUN_RETENTION_DAYS = 30
    runs = [run(job, days) for days in (1, 29, 31, 400)]
    report = retention.prune(now=NOW)
    assert left(*runs) == [True, True, False, False]
    assert report.by_reason == {"age": 2, "per_job": 0}
    assert report.by_group == {"failed": 0, "other": 2}


def test_the_newest_runs_of_each_job_are_kept(settings, owner, job):
    settings.RUN_RETENTION_PER_JOB = 3
    busy = [run(job, days) for days in (5, 1, 4, 2, 3)]
    other = make_job(owner, name="quiet")
    quiet = [run(other, days) for days in (50, 60)]
    report = retention.prune(now=NOW)
    assert left(*busy) == [False, True, False, True, True]
    assert left(*quiet) == [True, True]
    assert report.by_reason == {"age": 0, "per_job": 2}


def test_failed_runs_are_kept_by_their_own_limits(settings, job):
    settings.RUN_RETENTION_DAYS = 30
    settings.RUN_RETENTION_DAYS_FAILED = 90
    settings.RUN_RETENTION_PER_JOB = 1
    settings.RUN_RETENTION_PER_JOB_FAILED = 3
    kept = [run(job, 40, "failed"), run(job, 50, "lost"), run(job, 1, "timed_out")]
    gone = [run(job, 100, "timed_out"), run(job, 40, "succeeded"), run(job, 45, "cancelled")]
    newest = run(job, 2, "skipped")
    beyond = [run(job, 3, "missed"), run(job, 4, "succeeded")]
    report = retention.prune(now=NOW)
    assert left(*kept, newest) == [True] * 4
    assert left(*gone, *beyond) == [False] * 5
    assert report.runs == {("age", "failed"): 1, ("age", "other"): 2, ("per_job", "other"): 2}


def test_unfinished_runs_are_never_deleted(settings, job):
    settings.RUN_RETENTION_DAYS = settings.RUN_RETENTION_DAYS_FAILED = 1
    settings.RUN_RETENTION_PER_JOB = settings.RUN_RETENTION_PER_JOB_FAILED = 1
    going = [run(job, 500, status) for status in Run.PENDING]
    report = retention.prune(now=NOW)
    assert left(*going) == [True] * 3
    assert report.total == 0


def test_a_fan_out_parent_and_its_children_are_judged_together(settings, job):
    settings.RUN_RETENTION_DAYS = 30
    settings.RUN_RETENTION_PER_JOB = 1
    done = run(job, 40)
    done_children = [run(job, 40, "failed", parent=done, node=n) for n in ("w1", "w2")]
    busy = run(job, 40)
    busy_children = [run(job, 40, parent=busy, node="w1"), run(job, 0, "running", parent=busy)]
    young = run(job, 1)
    young_children = [run(job, 400, parent=young, node=n) for n in ("w1", "w2", "w3")]
    report = retention.prune(now=NOW)
    assert left(done, *done_children) == [False] * 3
    # A child still running keeps its family; a child is never judged on its own.
    assert left(busy, *busy_children) == [True] * 3
    assert left(young, *young_children) == [True] * 4
    assert report.runs == {("age", "other"): 1}
    assert report.children == 2
    assert report.total == 3


def test_batches_are_bounded_and_a_family_is_never_split(settings, job):
    settings.RUN_RETENTION_DAYS = 30
    for days in range(31, 43):
        run(job, days)
    seen: list[int] = []
    report = retention.prune(batch_size=5, now=NOW, progress=lambda r: seen.append(r.total))
    assert (report.batches, seen) == (3, [5, 10, 12])

    parent = run(job, 50)
    for node in ("w1", "w2", "w3"):
        run(job, 50, parent=parent, node=node)
    run(job, 51)
    seen.clear()
    report = retention.prune(batch_size=2, now=NOW, progress=lambda r: seen.append(r.total))
    assert sorted(seen) == seen and report.total == 5 and report.batches == 2
    assert Run.objects.count() == 0


def test_a_dry_run_deletes_nothing_and_counts_the_same(settings, owner, job):
    settings.RUN_RETENTION_DAYS = 30
    settings.RUN_RETENTION_PER_JOB = 2
    settings.RUN_RETENTION_PER_JOB_FAILED = 1
    for days in (1, 2, 3, 40, 50):
        run(job, days)
    for days in (1, 2, 100):
        run(job, days, "failed")
    parent = run(job, 60)
    run(job, 60, parent=parent, node="w1")
    before = Run.objects.count()
    dry = retention.prune(dry_run=True, now=NOW)
    assert Run.objects.count() == before
    real = retention.prune(batch_size=2, now=NOW)
    assert (dry.runs, dry.children, dry.total) == (real.runs, real.children, real.total)
    assert real.runs == {("age", "other"): 3, ("per_job", "other"): 1, ("per_job", "failed"): 2}
    assert Run.objects.count() == before - real.total == 3


def test_the_stats_are_the_same_after_a_prune(settings, api, owner, job):
    settings.RUN_RETENTION_DAYS = 30
    settings.RUN_RETENTION_PER_JOB_FAILED = 1
    other = make_job(owner, name="other")
    for n, status in enumerate(["succeeded", "failed", "timed_out", "skipped", "lost"] * 3):
        run(job if n % 2 else other, 10 * n, status, duration=None if n == 3 else n / 4)
    run(job, 0, "running", finished_at=None, duration=None)
    before = api.get("/api/v1/stats/").data
    assert retention.prune(now=NOW).total > 0
    assert RunTally.objects.exists()
    assert api.get("/api/v1/stats/").data == before
    # A second prune adds to the tallies it made.
    settings.RUN_RETENTION_DAYS = settings.RUN_RETENTION_DAYS_FAILED = 5
    assert retention.prune(now=NOW).total > 0
    assert api.get("/api/v1/stats/").data == before


def test_a_batch_another_prune_took_first_is_not_counted_twice(job):
    gone = run(job, 40, duration=2.0)
    family = {gone.id: []}
    assert retention.delete_batch(family) == {gone.id}
    assert retention.delete_batch(family) == set()
    tally = RunTally.objects.get()
    assert (tally.count, tally.duration_sum, tally.duration_max) == (1, 2.0, 2.0)


def test_the_command_says_what_it_would_delete_and_deletes_it(settings, job):
    settings.RUN_RETENTION_DAYS = 30
    for days in (31, 32, 33):
        run(job, days)
    out = StringIO()
    call_command("prune_runs", "--dry-run", stdout=out)
    assert "Keeping other runs: 30 days, no count limit." in out.getvalue()
    assert "Would delete 3 runs: by reason: age 3, per job 0;" in out.getvalue()
    assert Run.objects.count() == 3
    out = StringIO()
    call_command("prune_runs", "--batch-size", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert "  batch 1: 2 runs deleted so far" in lines
    assert "  batch 2: 3 runs deleted so far" in lines
    assert lines[-1].startswith("Deleted 3 runs in 2 batches: by reason: age 3, per job 0;")
    assert Run.objects.count() == 0
    with pytest.raises(CommandError, match="--batch-size must be from 1 to 10000"):
        call_command("prune_runs", "--batch-size", "0")


def test_a_negative_limit_is_refused(settings):
    settings.RUN_RETENTION_PER_JOB_FAILED = -1
    with pytest.raises(ImproperlyConfigured, match="RUN_RETENTION_"):
        retention.prune(dry_run=True)


def test_beat_prunes_every_hour_with_a_task_users_cannot_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["prune-runs"]
    assert entry == {"task": "workers.prune_runs", "schedule": 3600.0}
    app.loader.import_default_modules()
    assert "workers.prune_runs" in app.tasks
    assert "workers.prune_runs" not in payloads.registered_tasks()
