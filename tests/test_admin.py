"""The admin: its pages render, its actions act, and its form refuses what the API refuses."""

from __future__ import annotations

import pytest

from scheduler_app.admin import STATUS_COLOURS
from scheduler_app.models import Job, JobTemplate, Run
from tests.helpers import make_job


@pytest.fixture
def nightly(admin_user) -> Job:
    return make_job(admin_user, name="nightly", schedule={"type": "daily", "time": "02:00"})


@pytest.mark.parametrize(
    "page",
    ["job", "run", "calendar", "jobtemplate", "job/add", "job/{id}/change", "auditevent"],
)
def test_pages_render(admin_client, nightly, page):
    response = admin_client.get(f"/admin/scheduler_app/{page.format(id=nightly.id)}/")
    assert response.status_code == 200


def test_the_job_list_shows_schedule_and_next_run(admin_client, nightly):
    html = admin_client.get("/admin/scheduler_app/job/").content.decode()
    assert "At 02:00" in html and "nightly" in html


def test_pause_and_resume_actions(admin_client, nightly):
    url = "/admin/scheduler_app/job/"
    admin_client.post(url, {"action": "pause", "_selected_action": [nightly.id]})
    nightly.refresh_from_db()
    assert nightly.status == "paused"
    admin_client.post(url, {"action": "resume", "_selected_action": [nightly.id]})
    nightly.refresh_from_db()
    assert nightly.status == "active"


def test_a_template_opens_a_prefilled_job_form(admin_client, admin_user):
    template = JobTemplate.objects.create(
        owner=admin_user,
        name="backup",
        defaults={"payload": {"command": "b.sh"}, "timeout": 60},
    )
    response = admin_client.post(
        "/admin/scheduler_app/jobtemplate/",
        {"action": "new_job", "_selected_action": [template.id]},
    )
    assert response.status_code == 302
    # Only the template's id in the URL (the defaults may hold secrets): the form reads it.
    assert response["Location"] == f"/admin/scheduler_app/job/add/?template={template.id}"
    form = admin_client.get(response["Location"]).content.decode()
    assert "b.sh" in form and 'name="timeout" value="60"' in form


def test_every_run_status_has_a_colour_and_shows_in_the_run_list(admin_client, nightly):
    assert set(STATUS_COLOURS) == set(Run.Status.values)
    Run.objects.create(
        job=nightly, trigger="schedule", scheduled_for=nightly.created_at, status="waiting"
    )
    html = admin_client.get("/admin/scheduler_app/run/?status=waiting").content.decode()
    assert STATUS_COLOURS[Run.Status.WAITING] in html and "waiting" in html


def test_a_job_without_a_window_shows_an_empty_window_box(admin_client, nightly):
    html = admin_client.get(f"/admin/scheduler_app/job/{nightly.id}/change/").content.decode()
    assert 'id="id_window">\n</textarea>' in html


@pytest.mark.parametrize("model", ["job", "calendar", "jobtemplate"])
def test_the_owner_and_team_filters_name_only_what_the_viewer_may_see(world, model):
    """A staff user in no team is offered no other user's name nor the team in the list
    filters (Django's plain related filter lists every user and team)."""
    response = world.browser("outsider").get(f"/admin/scheduler_app/{model}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert world.team.name not in html
    assert not [name for name in ("coder", "editor", "viewer") if f">{name}<" in html]
