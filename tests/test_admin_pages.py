"""The admin's run and job pages: read-only runs with their output escaped, human
durations, links to related runs; the job's next fires, run strip and buttons, each
button refused without the right and hidden from who may not press it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app.humanize import human_duration, visible_controls
from scheduler_app.models import Job, Run
from tests.helpers import make_job

# (No NUL: PostgreSQL stores none; the workers take them out of the output.)
HOSTILE = "<script>alert('x')</script>\x1b[31mred\x07\x01end"


def run_page(client, run: Run) -> str:
    response = client.get(f"/admin/scheduler_app/run/{run.id}/change/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def finished(world) -> Run:
    return Run.objects.create(
        job=world.code_job, trigger="schedule", status="failed", scheduled_for=timezone.now(),
        duration=0.035322, exit_code=3, output=HOSTILE, error="<b>bad</b>\x1b",
    )  # fmt: skip


def test_a_run_page_has_no_save_no_delete_and_no_add(world, finished):
    client = world.browser("root")
    html = run_page(client, finished)
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "deletelink" not in html and "/delete/" not in html
    assert client.get("/admin/scheduler_app/run/add/").status_code == 403
    assert client.get(f"/admin/scheduler_app/run/{finished.id}/delete/").status_code == 403
    listing = client.get("/admin/scheduler_app/run/").content.decode()
    assert "delete_selected" not in listing and "/run/add/" not in listing


def test_a_run_page_shows_duration_badge_links_and_escaped_output(world, finished):
    html = run_page(world.browser("viewer"), finished)
    assert "35 ms" in html and "0.035322" not in html
    assert 'class="cf-badge"' in html and ">failed<" in html
    assert f'href="/admin/scheduler_app/job/{world.code_job.id}/change/"' in html
    assert (
        "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    )
    assert "\x1b" not in html and "\x07" not in html and "\x01" not in html
    assert "\u241b[31mred\u2407\u2401end" in html  # controls shown as their pictures
    assert "&lt;b&gt;bad&lt;/b&gt;\u241b" in html


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        ("10%\r20%\r30%\n", "30%\n"),  # a progress bar: its last rewrite
        ("dos\r\nlines\r\n", "dos\nlines\n"),
        ("a\r\x1b[0m\x07\nb\r", "\u241b[0m\u2407\nb"),  # a rewrite's own controls shown
    ],
)
def test_a_carriage_return_starts_its_line_over_as_in_the_live_log(output, shown):
    """As live_log.js shows it (tests/js/live_log.test.js has the same cases)."""
    assert visible_controls(output) == shown


def test_a_running_runs_page_shows_its_ended_lines_and_follows_from_there(world):
    run = Run.objects.create(job=world.code_job, trigger="manual", status="running",
                             scheduled_for=timezone.now(), output="start\n10%\r20%")  # fmt: skip
    page = world.browser("viewer").get(f"/admin/scheduler_app/run/{run.id}/change/")
    # The line being rewritten is left to the page's script, which reads from its start.
    assert page.context["output"] == "start\n"
    assert page.context["follow"]["offset"] == len("start\n")


def test_the_run_list_shows_human_durations(world, finished):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Run.objects.create(job=world.code_job, trigger="manual", status="succeeded",
                       scheduled_for=an_hour_ago, duration=124.4)  # fmt: skip
    html = world.browser("viewer").get("/admin/scheduler_app/run/").content.decode()
    assert "35 ms" in html and "2 min 4 s" in html and "Seconds" not in html


def test_a_run_page_links_its_attempts_parent_and_children(world):
    at = timezone.now()
    first = Run.objects.create(
        job=world.code_job, trigger="schedule", status="failed", scheduled_for=at
    )
    retry = Run.objects.create(job=world.code_job, trigger="retry", attempt=2, scheduled_for=at,
                               status="succeeded")  # fmt: skip
    child = Run.objects.create(job=world.code_job, trigger="schedule", scheduled_for=at,
                               node="w2", parent=first, status="failed")  # fmt: skip
    html = run_page(world.browser("viewer"), first)
    assert f'href="/admin/scheduler_app/run/{retry.id}/change/"' in html
    assert f'href="/admin/scheduler_app/run/{child.id}/change/"' in html
    child_page = run_page(world.browser("viewer"), child)
    assert f'href="/admin/scheduler_app/run/{first.id}/change/"' in child_page


def test_a_running_run_page_is_set_to_follow_its_log(world):
    run = world.run
    Run.objects.filter(id=run.id).update(status="running", output="so far\n")
    html = run_page(world.browser("viewer"), run)
    assert "following live" in html
    assert f'"log": "/api/v1/runs/{run.id}/log/"' in html and '"offset": 7' in html
    assert '"finished": false' in html


def test_a_viewer_sees_no_cancel_and_is_refused_one(world):
    client = world.browser("viewer")
    assert 'id="cf-cancel"' not in run_page(client, world.run)
    response = client.post(f"/admin/scheduler_app/run/{world.run.id}/cancel/", follow=True)
    assert "Refused: running, pausing, resuming or cancelling needs the role operator" in (
        response.content.decode()
    )
    world.run.refresh_from_db()
    assert world.run.status == "queued"


def test_an_operator_cancels_a_queued_run(world):
    client = world.browser("operator")
    assert 'id="cf-cancel"' in run_page(client, world.run)
    response = client.post(f"/admin/scheduler_app/run/{world.run.id}/cancel/", follow=True)
    assert f"Run #{world.run.id} cancelled." in response.content.decode()
    world.run.refresh_from_db()
    assert world.run.status == "cancelled"


def test_an_outsider_gets_nothing_of_another_users_run(world, finished):
    client = world.browser("outsider")
    response = client.get(f"/admin/scheduler_app/run/{finished.id}/change/", follow=True)
    html = response.content.decode()
    assert "alert(" not in html and "35 ms" not in html and "doesn\u2019t exist" in html
    assert client.post(f"/admin/scheduler_app/run/{world.run.id}/cancel/").status_code == 404
    assert client.post(f"/admin/scheduler_app/job/{world.code_job.id}/run-now/").status_code == 404
    world.run.refresh_from_db()
    assert world.run.status == "queued"


def test_a_button_wants_a_post(world):
    client = world.browser("root")
    assert client.get(f"/admin/scheduler_app/job/{world.code_job.id}/run-now/").status_code == 405


def test_a_button_wants_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["operator"])
    response = client.post(f"/admin/scheduler_app/job/{world.code_job.id}/pause/")
    assert response.status_code == 403
    assert Job.objects.get(id=world.code_job.id).enabled


def job_page(client, job: Job) -> str:
    response = client.get(f"/admin/scheduler_app/job/{job.id}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_viewer_sees_the_job_but_cannot_run_pause_or_resume_it(world):
    client = world.browser("viewer")
    html = job_page(client, world.code_job)
    assert 'id="cf-run-now"' not in html and 'id="cf-pause"' not in html
    for button in ("run-now", "pause", "resume"):
        response = client.post(
            f"/admin/scheduler_app/job/{world.code_job.id}/{button}/", follow=True
        )
        assert "Refused: running, pausing, resuming or cancelling" in response.content.decode()
    assert world.code_job.runs.count() == 1 and Job.objects.get(id=world.code_job.id).enabled


def test_an_operator_runs_pauses_and_resumes_a_job(world):
    client = world.browser("operator")
    job = world.code_job
    html = job_page(client, job)
    assert 'id="cf-run-now"' in html and 'id="cf-pause"' in html
    assert f"Cancel run #{world.run.id} (queued)" in html
    response = client.post(f"/admin/scheduler_app/job/{job.id}/run-now/", follow=True)
    assert "queued." in response.content.decode() and job.runs.count() == 2
    client.post(f"/admin/scheduler_app/job/{job.id}/pause/")
    assert not Job.objects.get(id=job.id).enabled
    assert 'id="cf-resume"' in job_page(client, job)
    client.post(f"/admin/scheduler_app/job/{job.id}/resume/")
    assert Job.objects.get(id=job.id).enabled


def test_the_job_page_shows_next_fires_in_its_zone_with_dst_warnings(admin_client, admin_user):
    job = make_job(admin_user, name="berlin", schedule={"type": "daily", "time": "02:30"},
                   timezone="Europe/Berlin")  # fmt: skip
    html = job_page(admin_client, job)
    assert html.count(" CET</td>") + html.count(" CEST</td>") == 10
    assert "02:30:00 CE" in html
    assert '<li class="cf-warning">On ' in html and "(clocks go forward)" in html


def test_the_job_page_strip_links_each_run_with_a_tooltip(world):
    job = world.http_job
    job.name = "<img src=x onerror=alert(1)>"
    job.save()
    runs = [Run.objects.create(job=job, trigger="manual", status=s, scheduled_for=timezone.now()
                               - timedelta(minutes=i), duration=1.5)
            for i, s in enumerate(["succeeded", "failed", "running"])]  # fmt: skip
    html = job_page(world.browser("viewer"), job)
    for run in runs:
        assert f'<a class="cf-mark" href="/admin/scheduler_app/run/{run.id}/change/"' in html
    assert f'title="#{runs[1].id} failed, manual, queued' in html and "1.5 s" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_job_with_runs_is_deleted_with_them(world, finished):
    """Runs have no Delete of their own, but go with their job."""
    client = world.browser("admin")
    url = f"/admin/scheduler_app/job/{world.code_job.id}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not Run.objects.filter(id=finished.id).exists()
    assert not Job.objects.filter(id=world.code_job.id).exists()


def test_a_viewer_still_cannot_delete_a_job(world):
    url = f"/admin/scheduler_app/job/{world.code_job.id}/delete/"
    assert world.browser("viewer").post(url, {"post": "yes"}).status_code == 403
    assert Job.objects.filter(id=world.code_job.id).exists()


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(None, "-"), (0, "0 ms"), (0.035322, "35 ms"), (0.9996, "1.0 s"), (4.24, "4.2 s"),
     (9.96, "10 s"), (59.6, "1 min"), (124, "2 min 4 s"), (3600, "1 h"), (3661, "1 h 1 min"),
     (90061, "1 d 1 h")],
)  # fmt: skip
def test_durations_in_words(seconds, words):
    assert human_duration(seconds) == words


def row_reads(queries, table: str, pk: int) -> int:
    """The reads of one row by its id through the admin's get_object (QuerySet.get)."""
    return sum(
        1 for q in queries.captured_queries
        if q["sql"].startswith(f'SELECT "{table}"."id"') and "LIMIT 21" in q["sql"]
        and f'"{table}"."id" = {pk}' in q["sql"]
    )  # fmt: skip


def test_a_job_or_run_page_reads_its_row_once(world, finished):
    client = world.browser("viewer")
    for table, pk, url in (
        ("scheduler_app_run", finished.id, f"/admin/scheduler_app/run/{finished.id}/change/"),
        ("scheduler_app_job", world.code_job.id,
         f"/admin/scheduler_app/job/{world.code_job.id}/change/"),
    ):  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        assert row_reads(queries, table, pk) == 1, table
