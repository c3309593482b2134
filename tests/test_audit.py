"""The audit log: every change to a job, template and calendar, and every run now, pause,
resume and cancel, through the API and the admin, says who, when, from where and what
changed (secrets masked); GET /api/v1/audit/ shows each user the events of their rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from scheduler_app import audit, services
from scheduler_app.models import AuditEvent, Calendar, Job, JobTemplate, Run
from tests.helpers import grant_run_code, make_job
from tests.test_validation import as_form

SECRET = "hunter2-very-secret"
MASKED = {"value": "***", "secret": True}
JOB = {
    "name": "backup",
    "payload": {"command": "b.sh"},
    "schedule": "manual",
    "env": {"TOKEN": {"value": SECRET, "secret": True}, "MODE": "full"},
}


def events(api: APIClient, **query: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/audit/", query)
    assert response.status_code == 200, response.data
    return response.json()["results"]


def summary(listed: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """Oldest first: (actor, address, via, action, object type)."""
    return [
        (e["actor"], e["address"], e["via"], e["action"], e["object_type"])
        for e in reversed(listed)
    ]


def test_every_api_action_on_a_job_is_told_with_who_and_what(api):
    job = api.post("/api/v1/jobs/", JOB, format="json").json()
    changed = {"env": {"TOKEN": {"value": "a-new-secret", "secret": True}, "MODE": "full"}}
    assert api.patch(f"/api/v1/jobs/{job['id']}/", {**changed, "timeout": 60},
                     format="json").status_code == 200  # fmt: skip
    api.post(f"/api/v1/jobs/{job['id']}/pause/")
    api.post(f"/api/v1/jobs/{job['id']}/resume/")
    run = api.post(f"/api/v1/jobs/{job['id']}/run/").json()
    assert api.post(f"/api/v1/runs/{run['id']}/cancel/").status_code == 200
    assert api.delete(f"/api/v1/jobs/{job['id']}/").status_code == 204

    listed = events(api, job=job["id"])
    who = ("alice", "127.0.0.1", "api")
    assert summary(listed) == [
        (*who, "create", "job"), (*who, "change", "job"), (*who, "pause", "job"),
        (*who, "resume", "job"), (*who, "run", "run"), (*who, "cancel", "run"),
        (*who, "delete", "job"),
    ]  # fmt: skip
    create, change, pause, resume, run_now, cancel, delete = reversed(listed)
    assert {"field": "env", "before": None,
            "after": {"TOKEN": MASKED, "MODE": "full"}} in create["changes"]  # fmt: skip
    assert change["changes"] == [
        {"field": "timeout", "before": None, "after": 60},
        {"field": "env", "before": {"TOKEN": MASKED, "MODE": "full"},
         "after": {"changed": "a secret value"}},
    ]  # fmt: skip
    assert pause["changes"] == [{"field": "enabled", "before": True, "after": False}]
    assert resume["changes"] == [{"field": "enabled", "before": False, "after": True}]
    assert (run_now["object_id"], run_now["job"]) == (run["id"], job["id"])
    assert cancel["changes"] == [{"field": "status", "before": "queued", "after": "cancelled"}]
    assert delete["object_label"] == "backup" and delete["job"] == job["id"]
    body = json.dumps(api.get("/api/v1/audit/").json())
    assert SECRET not in body and "a-new-secret" not in body


def test_a_changed_secret_is_told_as_changed_never_shown(api):
    job = api.post("/api/v1/jobs/", JOB, format="json").json()
    env = {"TOKEN": {"value": "another-secret", "secret": True}, "MODE": "full"}
    api.patch(f"/api/v1/jobs/{job['id']}/", {"env": env}, format="json")
    change = events(api, job=job["id"], action="change")[0]
    assert change["changes"] == [
        {"field": "env", "before": {"TOKEN": MASKED, "MODE": "full"},
         "after": {"changed": "a secret value"}}
    ]  # fmt: skip
    # Sent back as the API shows it (***), the secret is kept: nothing changed, no event.
    api.patch(f"/api/v1/jobs/{job['id']}/", {"env": {"TOKEN": MASKED, "MODE": "full"}},
              format="json")  # fmt: skip
    assert len(events(api, job=job["id"], action="change")) == 1


def test_templates_and_calendars_are_told_too(api):
    template = api.post("/api/v1/templates/", {"name": "t", "defaults": {
        "env": {"TOKEN": {"value": SECRET, "secret": True}}}}, format="json").json()  # fmt: skip
    api.patch(f"/api/v1/templates/{template['id']}/", {"description": "nightly"}, format="json")
    api.delete(f"/api/v1/templates/{template['id']}/")
    calendar = api.post("/api/v1/calendars/", {"name": "holidays", "dates": []},
                        format="json").json()  # fmt: skip
    api.patch(f"/api/v1/calendars/{calendar['id']}/", {"dates": ["2030-12-25"]}, format="json")
    api.delete(f"/api/v1/calendars/{calendar['id']}/")

    assert [(e["action"], e["object_type"]) for e in reversed(events(api))] == [
        ("create", "jobtemplate"), ("change", "jobtemplate"), ("delete", "jobtemplate"),
        ("create", "calendar"), ("change", "calendar"), ("delete", "calendar"),
    ]  # fmt: skip
    change = events(api, object_type="calendar", action="change")[0]
    assert change["changes"] == [{"field": "dates", "before": [], "after": ["2030-12-25"]}]
    created = events(api, object_type="jobtemplate", action="create")[0]
    assert {"field": "defaults", "before": None,
            "after": {"env": {"TOKEN": MASKED}}} in created["changes"]  # fmt: skip
    assert SECRET not in json.dumps(events(api))


@pytest.fixture
def owned(owner) -> Job:
    return make_job(owner, name="nightly", env={"TOKEN": {"value": SECRET, "secret": True}})


def test_the_admin_paths_are_told_with_the_admins_name(admin_client, admin_user, owned):
    url = f"/admin/scheduler_app/job/{owned.id}/change/"
    form = as_form({"name": "nightly", "kind": "command", "payload": {"command": "true"},
                    "schedule": "manual", "timezone": "UTC", "env": {"TOKEN": MASKED},
                    "timeout": 30}, owned.owner_id)  # fmt: skip
    assert admin_client.post(url, form).status_code == 302
    jobs = "/admin/scheduler_app/job/"
    admin_client.post(jobs, {"action": "pause", "_selected_action": [owned.id]})
    admin_client.post(jobs, {"action": "resume", "_selected_action": [owned.id]})
    admin_client.post(jobs, {"action": "run_now", "_selected_action": [owned.id]})
    run = Run.objects.get(job=owned)
    admin_client.post("/admin/scheduler_app/run/", {"action": "cancel",
                                                     "_selected_action": [run.id]})  # fmt: skip
    admin_client.post(f"/admin/scheduler_app/job/{owned.id}/delete/", {"post": "yes"})
    assert not Job.objects.filter(id=owned.id).exists()

    logged = AuditEvent.objects.filter(job_id=owned.id).order_by("id")
    assert [(e.actor_name, e.address, e.via, e.action) for e in logged] == [
        ("", None, "", "create"),  # make_job: code, no request
        *[("admin", "127.0.0.1", "admin", action)
          for action in ("change", "pause", "resume", "run", "cancel", "delete")],
    ]  # fmt: skip
    change = logged[1]
    fields = {c["field"] for c in change.changes}
    assert {"schedule", "timeout"} <= fields and "env" not in fields  # *** kept the secret
    owned_env = [c for c in logged[0].changes if c["field"] == "env"]
    assert owned_env == [{"field": "env", "before": None, "after": {"TOKEN": MASKED}}]


def test_the_admin_shows_the_log_and_the_jobs_events_on_its_page(admin_client, owned):
    services.set_enabled(owned, enabled=False)
    page = admin_client.get(f"/admin/scheduler_app/job/{owned.id}/change/").content.decode()
    assert f"/admin/scheduler_app/auditevent/?job__id__exact={owned.id}" in page
    assert "pause" in page and SECRET not in page
    listing = admin_client.get(f"/admin/scheduler_app/auditevent/?job__id__exact={owned.id}")
    assert listing.status_code == 200 and "nightly" in listing.content.decode()
    event = AuditEvent.objects.filter(job_id=owned.id).first()
    detail = admin_client.get(f"/admin/scheduler_app/auditevent/{event.id}/change/")
    assert detail.status_code == 200 and SECRET not in detail.content.decode()
    assert admin_client.post(f"/admin/scheduler_app/auditevent/{event.id}/delete/",
                             {"post": "yes"}).status_code == 403  # fmt: skip


def test_a_user_sees_only_the_events_of_their_own_rows(api, outsider_api, owned):
    services.set_enabled(owned, enabled=False)
    Calendar.objects.create(owner=owned.owner, name="c")
    assert len(events(api)) == 3  # created, paused, calendar
    assert events(outsider_api) == []
    assert events(outsider_api, job=owned.id) == []
    mine = outsider_api.post("/api/v1/calendars/", {"name": "mine", "dates": []}, format="json")
    assert [e["object_id"] for e in events(outsider_api)] == [mine.json()["id"]]
    assert mine.json()["id"] not in [e["object_id"] for e in events(api, object_type="calendar")]


def test_a_deleted_jobs_events_stay_with_its_owner(api, outsider_api, owned):
    job_id = owned.id
    owned.delete()
    assert [e["action"] for e in events(api, job=job_id)] == ["delete", "create"]
    assert events(outsider_api, job=job_id) == []


def test_the_log_filters_by_actor_action_and_time(api, teammate, owned):
    services.set_enabled(owned, enabled=False)
    first = AuditEvent.objects.order_by("id").first()
    with audit.serving(request_by(teammate)):
        services.set_enabled(owned, enabled=True)
    assert [e["action"] for e in events(api, actor="carol")] == ["resume"]
    assert [e["action"] for e in events(api, action="pause")] == ["pause"]
    since = events(api, since=first.at.isoformat().replace("+00:00", "Z"))
    assert len(since) == 3
    assert events(api, until=first.at.isoformat().replace("+00:00", "Z")) == []
    assert api.get("/api/v1/audit/", {"action": "explode"}).status_code == 400
    assert api.get("/api/v1/audit/", {"since": "yesterday"}).status_code == 400


def request_by(user: Any, address: str = "198.51.100.7") -> Any:
    """A request as the middleware sees it: its user and client address."""
    request = RequestFactory().post("/api/v1/", REMOTE_ADDR=address)
    request.user = user
    return request


def test_the_address_is_the_one_the_trusted_proxies_vouch_for(settings, owner, owned):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient()
    client.force_authenticate(owner)
    client.post(f"/api/v1/jobs/{owned.id}/pause/", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.2")
    pause = AuditEvent.objects.get(action="pause")
    assert (pause.actor_name, pause.address) == ("alice", "10.0.0.2")


def test_code_outside_a_request_is_the_system(owned):
    services.create_manual_run(owned)
    event = AuditEvent.objects.get(action="run")
    assert (event.actor_id, event.actor_name, event.address, event.via) == (None, "", None, "")


def test_deleting_a_user_keeps_the_history_of_their_jobs(owner, owned):
    job_id = owned.id
    get_user_model().objects.filter(id=owner.id).delete()
    assert list(AuditEvent.objects.filter(job_id=job_id).values_list("action", flat=True)) == [
        "delete",
        "create",
    ]


def test_template_secrets_are_masked_in_the_admin_log(admin_client, admin_user):
    template = JobTemplate.objects.create(owner=admin_user, name="t", defaults={
        "env": {"TOKEN": {"value": SECRET, "secret": True}}})  # fmt: skip
    listing = admin_client.get("/admin/scheduler_app/auditevent/").content.decode()
    assert "jobtemplate" in listing and SECRET not in listing
    event = AuditEvent.objects.get(object_type="jobtemplate", object_id=template.id)
    assert SECRET not in json.dumps(event.changes)


def test_team_members_see_the_events_of_the_teams_rows_and_members(world):
    services.set_enabled(world.http_job, enabled=False)
    viewer, outsider = world.api("viewer"), world.api("outsider")
    assert [e["action"] for e in events(viewer, job=world.http_job.id)] == ["pause", "create"]
    assert "viewer in ops" in {e["object_label"] for e in events(viewer, object_type="membership")}
    assert events(viewer, object_type="team")[0]["object_id"] == world.team.id
    assert events(outsider, job=world.http_job.id) == []
    assert events(outsider, object_type="membership") == []
    assert events(outsider, object_type="team") == []


def test_the_admin_reads_no_template_the_user_may_not_view(world):
    """A template's secrets (shown as ***) are kept for a job made from it: only from a
    template its maker may view, or ``from_template`` would copy another's secret."""
    world.template.defaults = {**world.template.defaults,
                               "env": {"TOKEN": {"value": SECRET, "secret": True}}}  # fmt: skip
    world.template.save()
    thief = grant_run_code(world.users["outsider"])
    browser = Client()
    browser.force_login(thief)
    page = browser.get(f"/admin/scheduler_app/job/add/?template={world.template.id}")
    assert page.status_code == 200 and f"{world.template.name} job" not in page.content.decode()
    form = as_form({"name": "stolen", "kind": "command", "payload": {"command": "env"},
                    "schedule": "manual", "timezone": "UTC", "env": {"TOKEN": MASKED},
                    "timeout": 30, "from_template": world.template.id}, thief.pk)  # fmt: skip
    response = browser.post("/admin/scheduler_app/job/add/", form)
    assert (
        response.status_code == 200 and "not a template you may use." in response.content.decode()
    )
    assert not Job.objects.filter(name="stolen").exists()


@pytest.mark.parametrize(
    "moment, ok",
    [("0413-07-17T18:28:41+19:08", True), ("0001-01-01T00:00:00+01:00", False),
     ("9999-12-31T23:59:59-01:00", False), ("2026-01-01T00:00:00Z", True)],
)  # fmt: skip
def test_time_bounds_are_read_in_utc_and_out_of_range_ones_refused(api, moment, ok):
    """Any offset Python reads (PostgreSQL refuses some) and no moment without a UTC time."""
    response = api.get("/api/v1/audit/", {"until": moment})
    assert response.status_code == (200 if ok else 400), response.data
    if not ok:
        assert "until" in response.data
