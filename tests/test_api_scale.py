"""The API at scale: a page costs the same few queries however many rows there are,
runs are paged by cursor (no count over the table), each list filter reads an index,
and the stats come from RunTotal, which the database keeps as runs end."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler_app import retention, runs
from scheduler_app.api import views
from scheduler_app.models import (
    Calendar,
    Job,
    JobDependency,
    Membership,
    Run,
    RunTally,
    RunTotal,
    Team,
)
from tests.helpers import make_job

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_seconds = count()

ENDPOINTS = {
    "jobs": "/api/v1/jobs/",
    "runs": "/api/v1/runs/",
    "runs by status": "/api/v1/runs/?status=failed",
    "a job's runs": "/api/v1/jobs/{job}/runs/",
    "stats": "/api/v1/stats/",
    "next runs": "/api/v1/next-runs/?count=100",
    "a job's next runs": "/api/v1/jobs/{job}/next-runs/",
}
# Token and user (1), then: jobs = count, page, dependencies; runs = the caller's job
# ids (when few: views.FEW_JOBS), the page (no count); a job's runs = the job, its page
# (not its dependencies, which it does not show); stats = job counts, run totals, runs
# going; next runs = the soonest jobs with their calendars; a job's next runs = the job
# with its calendar.
QUERIES = {
    "jobs": 4,
    "runs": 3,
    "runs by status": 3,
    "a job's runs": 3,
    "stats": 4,
    "next runs": 2,
    "a job's next runs": 2,
}


def add_jobs(owner, n: int) -> list[Job]:
    """``n`` jobs, each with a calendar, a dependency on the previous one and three runs."""
    made = []
    for _ in range(n):
        i = next(_seconds)
        calendar = Calendar.objects.create(owner=owner, name=f"c{i}", dates=["2030-01-01"])
        job = make_job(owner, name=f"job-{i}", calendar=calendar)
        if made:
            JobDependency.objects.create(job=job, upstream=made[-1])
        for status in ("succeeded", "failed", "queued"):
            add_run(job, status)
        made.append(job)
    return made


def add_run(job: Job, status: str, **fields) -> Run:
    fields = {"duration": 1.5 if status in Run.FINISHED else None, **fields}
    return Run.objects.create(
        job=job, trigger="schedule", scheduled_for=T0 + timedelta(seconds=next(_seconds)),
        status=status, **fields,
    )  # fmt: skip


def queries(api, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_each_list_costs_the_same_few_queries_for_2_rows_or_20(api, owner, monkeypatch):
    monkeypatch.setattr(views, "_many_jobs_until", {})  # no other test's user seen here
    job = add_jobs(owner, 2)[-1]
    few = {name: queries(api, url.format(job=job.id)) for name, url in ENDPOINTS.items()}
    add_jobs(owner, 18)
    many = {name: queries(api, url.format(job=job.id)) for name, url in ENDPOINTS.items()}
    assert few == many == QUERIES


@pytest.mark.parametrize("few_jobs", [0, 100])
def test_a_callers_runs_are_those_of_the_jobs_they_may_view_by_id_or_by_the_rules(
    api, owner, teammate, teammate_api, few_jobs, monkeypatch
):
    """A caller of many jobs (over FEW_JOBS; 0 here) has the access rules joined; of few,
    their ids listed: the same runs either way, a page at a time."""
    monkeypatch.setattr(views, "FEW_JOBS", few_jobs)
    monkeypatch.setattr(views, "_many_jobs_until", {})
    team = Team.objects.create(name="t")
    Membership.objects.create(team=team, user=teammate, role="viewer")
    shared, other = add_jobs(owner, 2)
    Job.objects.filter(id=shared.id).update(team=team)
    for who, jobs in ((api, [shared, other]), (teammate_api, [shared])):
        seen = [r["id"] for page in walk(who, "/api/v1/runs/?page_size=2") for r in page["results"]]
        expected = Run.objects.filter(job__in=jobs).order_by("-queued_at", "-id")
        assert seen == [r.id for r in expected]


def test_a_caller_once_seen_with_many_jobs_sees_only_the_runs_they_may_view_now(
    owner, teammate, teammate_api, monkeypatch
):
    """Who views many jobs is remembered for a while (their ids are not asked for):
    that choice of plan never shows a run they may no longer view."""
    monkeypatch.setattr(views, "FEW_JOBS", 0)
    monkeypatch.setattr(views, "_many_jobs_until", {})
    team = Team.objects.create(name="t")
    member = Membership.objects.create(team=team, user=teammate, role="viewer")
    [shared] = add_jobs(owner, 1)
    Job.objects.filter(id=shared.id).update(team=team)
    assert len(teammate_api.get("/api/v1/runs/").json()["results"]) == 3
    member.delete()
    monkeypatch.setattr(views, "FEW_JOBS", 100)  # few now, but remembered as many
    assert teammate_api.get("/api/v1/runs/").json()["results"] == []
    assert teammate.pk in views._many_jobs_until


def walk(api, url: str) -> list[dict]:
    """Every page from ``url`` on, following the next links."""
    pages = []
    while url:
        page = api.get(url).json()
        assert set(page) == {"next", "previous", "results"}  # no count: it reads every row
        pages.append(page)
        url = page["next"]
    return pages


def test_runs_are_paged_by_cursor_newest_first_without_a_gap_or_a_repeat(api, owner):
    job, other = make_job(owner, name="a"), make_job(owner, name="b")
    made = [add_run(job if n % 3 else other, "succeeded") for n in range(7)]
    # Two runs queued at the same instant: the id orders them.
    Run.objects.filter(id__in=[made[2].id, made[3].id]).update(queued_at=made[2].queued_at)
    newest_first = [r.id for r in Run.objects.order_by("-queued_at", "-id")]
    pages = walk(api, "/api/v1/runs/?page_size=2")
    assert [r["id"] for page in pages for r in page["results"]] == newest_first
    assert [len(page["results"]) for page in pages] == [2, 2, 2, 1]
    back = api.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[-2]["results"]
    mine = walk(api, f"/api/v1/jobs/{job.id}/runs/?page_size=2")
    assert [r["id"] for page in mine for r in page["results"]] == [
        i for i in newest_first if Run.objects.get(id=i).job_id == job.id
    ]


def test_a_cursor_that_is_not_ours_is_a_404_and_a_bad_page_size_a_400(api, owner):
    assert api.get("/api/v1/runs/?cursor=bm9wZQ").status_code == 404
    response = api.get("/api/v1/runs/?page_size=501")
    assert response.status_code == 400 and "page_size" in response.json()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plans")
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "run_recent_idx"),
        ({"job_id": 1}, "run_job_recent_idx"),
        ({"status": "failed"}, "run_status_idx"),
        ({"trigger": "manual"}, "run_trigger_recent_idx"),
        ({"worker": "node-1"}, "run_worker_recent_idx"),
    ],
)
def test_each_runs_filter_reads_its_index_in_the_lists_order(db, filters, index):
    page = Run.objects.filter(**filters).order_by("-queued_at", "-id")[:51]
    with connection.cursor() as cursor:
        sql, params = page.query.sql_with_params()
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " / ".join(row[-1] for row in cursor.fetchall())
    assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


def totals(job: Job) -> dict[str, tuple[int, float, int, float | None]]:
    return {
        t.status: (t.count, t.duration_sum, t.duration_count, t.duration_max)
        for t in RunTotal.objects.filter(job=job)
    }


def test_run_totals_follow_runs_through_their_lifecycle(owner):
    job = make_job(owner)
    run = runs.create(job=job, trigger="manual", scheduled_for=T0)
    runs.claim(run, "node-1")
    assert totals(job) == {}  # nothing finished yet
    runs.finish(run, "succeeded", exit_code=0)
    [(n, total, timed, longest)] = totals(job).values()
    assert (n, timed) == (1, 1) and total == longest > 0
    cancelled = runs.create(job=job, trigger="manual", scheduled_for=T0 + timedelta(1))
    runs.claim(cancelled, "node-1")
    runs.cancel(cancelled.id, "stop")
    assert totals(job)["cancelled"] == (1, 0.0, 0, None)  # its process has not ended yet
    runs.finish(cancelled, "failed")  # it ends: its duration, not a second run
    n, total, timed, longest = totals(job)["cancelled"]
    assert (n, timed) == (1, 1) and total == longest > 0
    runs.record_skipped(job, T0 + timedelta(2), "window")
    assert totals(job)["skipped"] == (1, 0.0, 0, None)


def test_stats_count_finished_runs_from_totals_and_going_ones_live(api, owner, settings):
    settings.RUN_RETENTION_DAYS = 1
    job = make_job(owner)
    for status, duration in (("succeeded", 2.0), ("succeeded", 4.0), ("failed", 9.0)):
        add_run(job, status, duration=duration, finished_at=T0)
    add_run(job, "running")
    expected = {
        "jobs": {"total": 1, "active": 1, "paused": 0, "completed": 0},
        "runs": {"total": 4, "by_status": {"succeeded": 2, "failed": 1, "running": 1}},
        "success_rate": pytest.approx(2 / 3),
        "duration_seconds": {"average": 5.0, "longest": 9.0},
    }
    assert api.get("/api/v1/stats/").json() == expected
    assert retention.prune().total == 3
    assert api.get("/api/v1/stats/").json() == expected  # deleted runs still count


def test_the_migration_fills_totals_from_the_runs_there_are_and_the_pruned_tallies(owner):
    migration = importlib.import_module("scheduler_app.migrations.0017_api_indexes_run_totals")
    job = make_job(owner)
    add_run(job, "succeeded", duration=2.0)
    add_run(job, "failed", duration=None)
    add_run(job, "queued")
    RunTally.objects.create(job=job, status="succeeded", count=3, duration_sum=9.0,
                            duration_count=3, duration_max=5.0)  # fmt: skip
    RunTotal.objects.all().delete()  # as before the migration
    migration.fill(apps, None)
    assert totals(job) == {"succeeded": (4, 11.0, 4, 5.0), "failed": (1, 0.0, 0, None)}
