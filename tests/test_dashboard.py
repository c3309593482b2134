"""The dashboard: its page, and GET /api/v1/dashboard/'s figures against the database,
limited to what the caller may view."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app import services
from scheduler_app.models import Run
from tests.helpers import make_job, wait_for

FAILED = ("failed", "timed_out", "lost")


def add_run(job, status: str, ago: timedelta, duration: float | None = None, **fields) -> Run:
    """A run queued ``ago`` before now (queued_at is set on insert: moved after)."""
    at = timezone.now() - ago
    run = Run.objects.create(job=job, trigger="schedule", status=status, scheduled_for=at,
                             duration=duration, **fields)  # fmt: skip
    Run.objects.filter(id=run.id).update(queued_at=at)
    return run


def nearest_rank_p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


@pytest.fixture
def fleet(owner, outsider):
    """The owner's two jobs with runs over the last days, and the outsider's own."""
    busy = make_job(owner, name="busy")
    flaky = make_job(owner, name="flaky")
    durations = [0.1 * (i + 1) for i in range(40)]
    for i, seconds in enumerate(durations):
        add_run(busy, "succeeded", timedelta(minutes=30 * i + 5), seconds)
    for i in range(6):
        add_run(flaky, FAILED[i % 3], timedelta(hours=i + 1), 2.0 + i, error=f"boom {i}")
    add_run(flaky, "succeeded", timedelta(hours=2), 1.0)
    add_run(flaky, "succeeded", timedelta(days=3), 9.0)  # outside 24 h, inside 7 days
    add_run(busy, "succeeded", timedelta(days=9), 99.0)  # outside both windows
    running = add_run(busy, "running", timedelta(minutes=1), started_at=timezone.now())
    theirs = make_job(outsider, name="secret-of-bob")
    add_run(theirs, "failed", timedelta(minutes=10), 1.0, error="bob's error")
    add_run(theirs, "running", timedelta(minutes=2))
    return {"busy": busy, "flaky": flaky, "durations": durations, "running": running}


def test_the_dashboard_page_renders_in_the_admin_and_the_index_links_to_it(admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert "scheduler_app/vendor/chartjs/chart.umd.min.js" in page
    assert 'id="cf-poll"' in page and "/api/v1/dashboard/" in page
    assert 'href="/admin/dashboard/"' in admin_client.get("/admin/").content.decode()


def test_the_dashboard_page_needs_a_staff_login(client):
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_figures_match_the_database(api, fleet):
    data = api.get("/api/v1/dashboard/").data
    runs_24h = Run.objects.filter(job__owner__username="alice",
                                  queued_at__gte=timezone.now() - timedelta(hours=23))  # fmt: skip
    assert len(data["hours"]) == 24
    shown = sum(sum(h["by_status"].values()) for h in data["hours"])
    # The hours are whole: the first starts up to an hour before now - 23 h.
    assert runs_24h.count() <= shown <= runs_24h.count() + 2
    jobs = {row["job_name"]: row for row in data["jobs"]}
    assert set(jobs) == {"busy", "flaky"}  # never the outsider's
    assert data["jobs"][0]["job_name"] == "flaky"  # most failures first
    busy = fleet["durations"][:48]  # the runs queued in the last 24 hours (every 30 min)
    assert jobs["busy"]["runs"] == 40 + 1  # and the running one
    assert jobs["busy"]["success_rate"] == 1.0
    assert jobs["busy"]["p95_seconds"] == pytest.approx(nearest_rank_p95(busy))
    assert jobs["flaky"] == {
        "job": fleet["flaky"].id, "job_name": "flaky", "runs": 7, "succeeded": 1, "failed": 6,
        "success_rate": pytest.approx(1 / 7), "p95_seconds": 7.0, "p95": "7.0 s",
    }  # fmt: skip
    assert [r["id"] for r in data["running"]] == [fleet["running"].id]
    assert [r["error"] for r in data["failures"]] == [f"boom {i}" for i in range(6)]


def test_the_week_takes_in_older_runs(api, fleet):
    jobs = {row["job_name"]: row for row in api.get("/api/v1/dashboard/?window=7d").data["jobs"]}
    assert jobs["flaky"]["runs"] == 8 and jobs["flaky"]["succeeded"] == 2
    assert jobs["busy"]["runs"] == 41  # the run 9 days ago is outside


def test_an_outsider_sees_nothing_of_the_owners(outsider_api, fleet):
    data = outsider_api.get("/api/v1/dashboard/").data
    assert [row["job_name"] for row in data["jobs"]] == ["secret-of-bob"]
    assert [r["error"] for r in data["failures"]] == ["bob's error"]
    assert len(data["running"]) == 1 and data["running"][0]["job_name"] == "secret-of-bob"
    assert sum(sum(h["by_status"].values()) for h in data["hours"]) == 2
    assert all(job["job_name"] == "secret-of-bob" for job in data["upcoming"])


def test_a_superuser_sees_every_job(admin_client, fleet):
    data = admin_client.get("/api/v1/dashboard/").json()
    assert {row["job_name"] for row in data["jobs"]} == {"busy", "flaky", "secret-of-bob"}


@pytest.mark.parametrize("window", ["1y", "", "24H"])
def test_an_unknown_window_is_refused_by_name(api, window):
    response = api.get(f"/api/v1/dashboard/?window={window}")
    assert response.status_code == 400 and "window" in response.data


def test_without_credentials_it_is_401(client):
    assert client.get("/api/v1/dashboard/").status_code in (401, 403)


def test_the_next_24_hours_of_fires_per_job(api, owner):
    hourly = make_job(
        owner, name="hourly", schedule={"type": "interval", "every": 1, "unit": "hours"}
    )
    make_job(owner, name="manual", schedule={"type": "manual"})
    minutely = make_job(owner, name="minutely")  # 1440 fires a day: 48 listed, more said
    upcoming = {row["job_name"]: row for row in api.get("/api/v1/dashboard/").data["upcoming"]}
    assert set(upcoming) == {"hourly", "minutely"}
    assert len(upcoming["hourly"]["at"]) in (23, 24) and not upcoming["hourly"]["more"]
    assert len(upcoming["minutely"]["at"]) == 48 and upcoming["minutely"]["more"]
    assert upcoming["hourly"]["job"] == hourly.id and upcoming["minutely"]["job"] == minutely.id


def test_the_figures_stay_a_few_queries_however_many_jobs(
    api, owner, django_assert_max_num_queries
):
    for n in range(30):
        job = make_job(owner, name=f"job{n}", schedule={"type": "manual"})
        add_run(job, "failed", timedelta(minutes=n + 1), 1.0, error="x")
    with django_assert_max_num_queries(20):  # auth, 5 reads, one p95 per shown job
        data = api.get("/api/v1/dashboard/").data
    assert len(data["jobs"]) == 10


@pytest.mark.stack
def test_a_running_run_is_followed_live_on_its_page_and_the_dashboard(
    live, admin_client, admin_user
):
    """The real worker runs a job that prints for a few seconds: the dashboard lists it
    as running, its page is set to follow it, and following the log from the page's
    offset (as its script does) gets the output in pieces, then its end."""
    ticks = "for i in $(seq 1 12); do echo tick $i; sleep 0.25; done"
    job = make_job(
        admin_user, name="ticker", schedule={"type": "manual"}, payload={"command": ticks}
    )
    run = services.create_manual_run(job)
    wait_for(lambda: Run.objects.filter(id=run.id, status="running").exclude(output="").exists())
    running = admin_client.get("/api/v1/dashboard/").json()["running"]
    assert [r["id"] for r in running] == [run.id]
    page = admin_client.get(f"/admin/scheduler_app/run/{run.id}/change/")
    follow = page.context["follow"]
    assert follow["finished"] is False and follow["log"] == f"/api/v1/runs/{run.id}/log/"
    text, offset, pieces = page.context["output"], follow["offset"], 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # as the page polls: every 0.3 s, until it ended
        answer = admin_client.get(follow["log"], {"offset": offset}).json()
        assert answer["offset"] == offset
        if answer["output"]:
            text, offset, pieces = text + answer["output"], answer["next_offset"], pieces + 1
        if answer["finished"]:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"run {run.id} did not end within 60 s")
    assert answer["status"] == "succeeded" and pieces >= 2
    assert text == "".join(f"tick {i}\n" for i in range(1, 13))
    assert admin_client.get("/api/v1/dashboard/").json()["running"] == []


def test_the_slow_figures_are_kept_a_while_and_the_running_runs_are_not(api, owner, settings):
    """Runs per hour, the jobs' health and the timeline come from the cache for
    DASHBOARD_CACHE_SECONDS (one computation a period however many dashboards poll); the
    running runs are read at every call."""
    settings.DASHBOARD_CACHE_SECONDS = 60
    job = make_job(owner, name="kept", schedule={"type": "manual"})
    add_run(job, "failed", timedelta(minutes=5), 1.0, error="first")
    first = api.get("/api/v1/dashboard/").data
    add_run(job, "failed", timedelta(minutes=4), 1.0, error="second")
    running = add_run(job, "running", timedelta(minutes=1), None)
    second = api.get("/api/v1/dashboard/").data
    assert second["jobs"] == first["jobs"] and second["figures_at"] == first["figures_at"]
    assert [r["id"] for r in second["running"]] == [running.id]
    assert [r["error"] for r in second["failures"]] == ["second", "first"]
    settings.DASHBOARD_CACHE_SECONDS = 0
    assert api.get("/api/v1/dashboard/").data["jobs"][0]["failed"] == 2


def test_a_poll_of_the_dashboard_reads_no_run_output(api, owner):
    """The running and failed runs are read at every poll of every open dashboard: their
    output (up to SCHEDULER_OUTPUT_LIMIT each) is left in the database; the page follows
    a running run's through its log, from the offset it last read."""
    job = make_job(owner, name="chatty", schedule={"type": "manual"})
    add_run(job, "running", timedelta(minutes=1), output="progress\n" * 5000)
    add_run(job, "failed", timedelta(minutes=2), 1.0, output="trace\n" * 5000, error="boom")
    with CaptureQueriesContext(connection) as queries:
        data = api.get("/api/v1/dashboard/").json()
    assert [r["job_name"] for r in data["running"]] == ["chatty"]
    assert [r["error"] for r in data["failures"]] == ["boom"]
    run_columns = [q["sql"] for q in queries.captured_queries if "scheduler_app_run" in q["sql"]]
    assert run_columns and not [sql for sql in run_columns if '"scheduler_app_run"."output"' in sql]
