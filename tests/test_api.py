"""The REST API: auth, ownership, validation messages, and the read endpoints."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from scheduler_app.models import Job, Run
from tests.helpers import grant_run_code

JOB = {"name": "backup", "payload": {"command": "echo hi"}, "schedule": "*/5 * * * *"}


@pytest.fixture
def job(api) -> dict:
    response = api.post("/api/v1/jobs/", JOB, format="json")
    assert response.status_code == 201, response.data
    return response.data


def test_it_refuses_requests_without_credentials(db):
    response = APIClient().get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_it_exchanges_a_password_for_a_token(owner):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}, format="json"
    )
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.data['token']}")
    assert client.get("/api/v1/jobs/").status_code == 200
    bad = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "nope"})
    assert bad.status_code == 400


def test_it_creates_a_job_with_defaults_and_derived_fields(api, job):
    assert job["schedule"] == {"type": "cron", "expression": "*/5 * * * *"}
    assert job["payload"] == {"command": "echo hi", "shell": "/bin/sh"}
    assert job["schedule_description"] == "Every 5 minutes"
    assert (job["status"], job["owner"], job["queue"], job["timezone"]) == (
        "active",
        "alice",
        "default",
        "UTC",
    )
    assert job["next_run_at"].endswith(("0:00Z", "5:00Z"))
    assert (job["total_runs"], job["failed_runs"], job["last_run_at"]) == (0, 0, None)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"schedule": "0 0 31 2 *"}, "schedule", "never fires"),
        ({"schedule": "61 * * * *"}, "schedule", "invalid cron expression"),
        (
            {"schedule": {"type": "interval", "every": -5, "unit": "minutes"}},
            "schedule",
            "'every' must be a positive whole number",
        ),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"kind": "teleport"}, "kind", "is not a valid choice"),
        ({"kind": "http"}, "payload", "'url' must be an http:// or https:// URL"),
        (
            {"kind": "script", "payload": {"path": "/etc/passwd"}},
            "payload",
            "outside the directories jobs may use",
        ),
        (
            {"kind": "celery", "payload": {"task": "os.system"}},
            "payload",
            "must be a registered Celery task",
        ),
        ({"kind": "commands", "payload": {"commands": []}}, "payload", "non-empty list"),
        ({"kind": "python", "payload": {}}, "payload", "'code' is required"),
        ({"working_dir": "/etc"}, "working_dir", "outside the directories jobs may use"),
        ({"max_memory_mb": 1}, "max_memory_mb", "greater than or equal to 16"),
        ({"env": {"1BAD": "x"}}, "env", "not a valid variable name"),
        ({"payload": {}}, "payload", "'command' is required"),
        ({"payload": {"command": "ls", "shell": "bash"}}, "payload", "absolute path"),
        ({"timeout": 0}, "timeout", "greater than or equal to 1"),
        ({"priority": 12}, "priority", "less than or equal to 9"),
        ({"max_retries": -1}, "max_retries", "greater than or equal to 0"),
        ({"queue": "no spaces"}, "queue", "letters, digits"),
        ({"concurrency_policy": "sometimes"}, "concurrency_policy", "is not a valid choice"),
        ({"max_concurrent": 0}, "max_concurrent", "greater than or equal to 1"),
        ({"working_dir": "relative/dir"}, "working_dir", "absolute path"),
        ({"env": {"A": ["list"]}}, "env", "A: Not a valid string"),
        ({"name": ""}, "name", "may not be blank"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field(api, change, field, message):
    response = api.post("/api/v1/jobs/", {**JOB, **change}, format="json")
    assert response.status_code == 400
    assert list(response.data) == [field]
    assert message in str(response.data[field]), response.data


def test_a_missing_schedule_and_payload_are_named(api):
    response = api.post("/api/v1/jobs/", {"name": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.data) == {"payload", "schedule"}


def test_names_are_unique_per_owner(api, job, outsider, outsider_api):
    grant_run_code(outsider)
    again = api.post("/api/v1/jobs/", JOB, format="json")
    assert again.status_code == 400
    assert again.data == {"name": ["you already have a job named 'backup'."]}
    assert outsider_api.post("/api/v1/jobs/", JOB, format="json").status_code == 201


@pytest.mark.parametrize("other", ["teammate_api", "outsider_api"])
def test_a_user_sees_only_their_own_jobs_and_runs(api, job, other, request):
    """A job in no team is its owner's alone: a teammate sees no more than an outsider."""
    bob = request.getfixturevalue(other)
    assert bob.get("/api/v1/jobs/").data["count"] == 0
    for method, path in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "pause/"),
        ("post", "run/"),
        ("get", "runs/"),
        ("get", "next-runs/"),
    ]:
        response = getattr(bob, method)(f"/api/v1/jobs/{job['id']}/{path}", {}, format="json")
        assert response.status_code == 404, (method, path)
    run = Run.objects.create(job_id=job["id"], trigger="manual", scheduled_for="2026-01-01T00:00Z")
    assert bob.get(f"/api/v1/runs/{run.id}/").status_code == 404
    assert bob.get(f"/api/v1/runs/{run.id}/log/").status_code == 404


def test_a_job_in_the_team_is_the_teammates_too(api, job, team, teammate_api, outsider_api):
    url = f"/api/v1/jobs/{job['id']}/"
    assert api.patch(url, {"team": team.id}, format="json").data["team"] == team.id
    assert teammate_api.get(url).status_code == 200
    assert teammate_api.post(url + "pause/").status_code == 200
    refused = teammate_api.patch(url, {"description": "mine now"}, format="json")
    assert refused.status_code == 403  # an editor, but a command job needs the code right
    assert outsider_api.get(url).status_code == 404


def test_staff_alone_see_no_more_but_superusers_see_every_job(api, job, outsider, outsider_api):
    """is_staff opens the admin site; it gives no right in the API (issue 13)."""
    outsider.is_staff = True
    outsider.save()
    assert outsider_api.get("/api/v1/jobs/").data["count"] == 0
    assert outsider_api.get(f"/api/v1/jobs/{job['id']}/").status_code == 404
    outsider.is_superuser = True
    outsider.save()
    assert [j["name"] for j in outsider_api.get("/api/v1/jobs/").data["results"]] == ["backup"]


def test_it_updates_pauses_and_resumes_a_job(api, job):
    url = f"/api/v1/jobs/{job['id']}/"
    patched = api.patch(
        url, {"schedule": "every 10 minutes", "timezone": "Europe/Paris"}, format="json"
    )
    assert patched.status_code == 200, patched.data
    assert patched.data["schedule"] == {"type": "interval", "every": 10, "unit": "minutes"}
    paused = api.post(url + "pause/")
    assert (paused.data["status"], paused.data["enabled"], paused.data["next_run_at"]) == (
        "paused",
        False,
        None,
    )
    resumed = api.post(url + "resume/")
    assert resumed.data["status"] == "active" and resumed.data["next_run_at"]
    assert api.delete(url).status_code == 204
    assert not Job.objects.filter(id=job["id"]).exists()


def test_it_lists_with_pagination_and_filters(api):
    for i in range(3):
        api.post("/api/v1/jobs/", {**JOB, "name": f"job-{i}"}, format="json")
    api.post("/api/v1/jobs/job-0/pause/")
    page = api.get("/api/v1/jobs/?page_size=2")
    assert (page.data["count"], len(page.data["results"])) == (3, 2)
    assert page.data["next"].endswith("page=2&page_size=2")
    first_id = page.data["results"][0]["id"]
    api.post(f"/api/v1/jobs/{first_id}/pause/")
    assert [j["id"] for j in api.get("/api/v1/jobs/?status=paused").data["results"]] == [first_id]
    assert api.get("/api/v1/jobs/?status=sleeping").status_code == 400
    assert api.get("/api/v1/jobs/?search=job-2").data["count"] == 1


def test_the_name_filter_is_exact_and_shows_only_the_callers_jobs(api, outsider_api):
    """The CLI finds a job by its name with ?name=: exact, never a neighbour, never
    another user's job of that name."""
    for name in ("backup", "backup-old", "Backup"):
        api.post("/api/v1/jobs/", {**JOB, "name": name}, format="json")
    theirs = {**JOB, "kind": "http", "payload": {"url": "https://example.com/"}}
    assert outsider_api.post("/api/v1/jobs/", theirs, format="json").status_code == 201
    found = api.get("/api/v1/jobs/", {"name": "backup"}).data["results"]
    assert [(job["name"], job["owner"]) for job in found] == [("backup", "alice")]
    assert api.get("/api/v1/jobs/", {"name": "backu"}).data["count"] == 0


def test_next_runs_of_a_job_and_of_all_jobs(api, job):
    response = api.get(f"/api/v1/jobs/{job['id']}/next-runs/?count=3")
    times = response.data["next_runs"]
    assert len(times) == 3 and times[0] == job["next_run_at"]
    assert times == sorted(times)
    assert api.get(f"/api/v1/jobs/{job['id']}/next-runs/?count=0").status_code == 400
    api.post(
        "/api/v1/jobs/", {**JOB, "name": "often", "schedule": "every 1 minutes"}, format="json"
    )
    upcoming = api.get("/api/v1/next-runs/?count=10").data["next_runs"]
    assert len(upcoming) == 10
    moments = [datetime.fromisoformat(u["at"]) for u in upcoming]  # not as text: .3Z < Z
    assert moments == sorted(moments)
    assert {u["job_name"] for u in upcoming} == {"backup", "often"}


def test_preview_shows_description_and_times(api):
    response = api.post(
        "/api/v1/schedules/preview/",
        {"schedule": "0 9 * * 1-5", "timezone": "Europe/Paris", "count": 2},
        format="json",
    )
    assert response.status_code == 200
    assert response.data["description"] == "At 09:00, Monday through Friday"
    assert [t[11:] for t in response.data["next_runs"]] in (
        ["08:00:00Z"] * 2,
        ["07:00:00Z"] * 2,
        ["08:00:00Z", "07:00:00Z"],
    )
    bad = api.post("/api/v1/schedules/preview/", {"schedule": "whenever"}, format="json")
    assert bad.status_code == 400 and "could not understand" in str(bad.data["schedule"])


def test_run_now_returns_202_with_a_queued_manual_run(api, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/jobs/{job['id']}/run/")
    assert response.status_code == 202
    assert (response.data["trigger"], response.data["status"], response.data["attempt"]) == (
        "manual",
        "queued",
        1,
    )
    assert len(callbacks) == 1  # the message to the worker is sent only after the commit
    log = api.get(f"/api/v1/runs/{response.data['id']}/log/")
    assert log.data == {
        "id": response.data["id"],
        "status": "queued",
        "finished": False,
        "offset": 0,
        "next_offset": 0,
        "output": "",
    }
    cancelled = api.post(f"/api/v1/runs/{response.data['id']}/cancel/")
    assert cancelled.data["status"] == "cancelled" and cancelled.data["finished_at"]


def test_health_needs_no_login_and_reports_each_part(db):
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200
    assert set(response.data) == {"status", "database", "redis", "workers", "beat"}
    assert (response.data["status"], response.data["database"], response.data["redis"]) == (
        "ok",
        "ok",
        "ok",
    )


def test_the_openapi_schema_and_docs_are_served(db):
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/jobs/{id}/next-runs/" in schema.content
    assert APIClient().get("/api/docs/").status_code == 200


def test_stats_counts_runs_by_status(api, job):
    for status in ("succeeded", "succeeded", "failed"):
        Run.objects.create(
            job_id=job["id"],
            trigger="manual",
            status=status,
            duration=2.0,
            scheduled_for=f"2026-01-01T00:00:0{Run.objects.count()}Z",
        )
    data = api.get("/api/v1/stats/").data
    assert data["runs"] == {"total": 3, "by_status": {"succeeded": 2, "failed": 1}}
    assert data["success_rate"] == pytest.approx(2 / 3)
    assert data["jobs"]["total"] == 1


def test_the_schema_is_valid_and_has_no_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "schedule",
                "timezone",
                "count",
                "start_at",
                "end_at",
                "window",
                "jitter",
                "calendar_policy",
            ]
        ),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.text(max_size=12)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=6,
        ),
    )
)
def test_preview_answers_any_body_with_a_result_or_a_400(api, body):
    response = api.post("/api/v1/schedules/preview/", body, format="json")
    assert response.status_code in (200, 400), response.data


def test_the_log_can_be_followed_from_an_offset(api, job):
    run = Run.objects.create(
        job_id=job["id"],
        trigger="manual",
        status="running",
        scheduled_for="2026-01-01T00:00Z",
        output="line 1\nline 2\n",
    )
    first = api.get(f"/api/v1/runs/{run.id}/log/").data
    assert (first["output"], first["next_offset"]) == ("line 1\nline 2\n", 14)
    Run.objects.filter(id=run.id).update(output="line 1\nline 2\nline 3\n")
    more = api.get(f"/api/v1/runs/{run.id}/log/?offset=14").data
    assert (more["offset"], more["output"], more["next_offset"]) == (14, "line 3\n", 21)
    assert api.get(f"/api/v1/runs/{run.id}/log/?offset=99").data["offset"] == 0
    assert api.get(f"/api/v1/runs/{run.id}/log/?offset=-1").status_code == 400


def test_dependencies_are_set_and_cycles_refused(api):
    ids = {}
    for name in ("a", "b", "c"):
        ids[name] = api.post("/api/v1/jobs/", {**JOB, "name": name}, format="json").data["id"]
    b = api.patch(f"/api/v1/jobs/{ids['b']}/", {"depends_on": [{"job": ids["a"]}]}, format="json")
    assert b.data["depends_on"] == [{"job": ids["a"], "on": "success"}]
    c = api.patch(
        f"/api/v1/jobs/{ids['c']}/",
        {"depends_on": [{"job": ids["b"], "on": "always"}]},
        format="json",
    )
    assert c.status_code == 200
    cycle = api.patch(
        f"/api/v1/jobs/{ids['a']}/", {"depends_on": [{"job": ids["c"]}]}, format="json"
    )
    assert cycle.status_code == 400
    assert cycle.data == {"depends_on": ["this would make a cycle: a -> b -> c -> a."]}
    itself = api.patch(
        f"/api/v1/jobs/{ids['a']}/", {"depends_on": [{"job": ids["a"]}]}, format="json"
    )
    assert itself.data == {"depends_on": ["a job cannot depend on itself."]}
    assert Job.objects.get(id=ids["a"]).dependencies.count() == 0


def test_a_job_is_made_from_a_template_with_overrides(api):
    template = api.post(
        "/api/v1/templates/",
        {
            "name": "nightly",
            "defaults": {
                "payload": {"command": "backup.sh"},
                "schedule": "daily at 02:00",
                "timeout": 600,
                "max_retries": 2,
                "tags": ["backup"],
            },
        },
        format="json",
    )
    assert template.status_code == 201, template.data
    made = api.post(
        f"/api/v1/templates/{template.data['id']}/instantiate/",
        {"name": "db backup", "timeout": 900},
        format="json",
    )
    assert made.status_code == 201, made.data
    assert (made.data["name"], made.data["timeout"], made.data["max_retries"]) == (
        "db backup",
        900,
        2,
    )
    assert made.data["schedule"] == {"type": "daily", "time": "02:00"}
    bad = api.post(
        f"/api/v1/templates/{template.data['id']}/instantiate/",
        {"name": "x", "schedule": "whenever"},
        format="json",
    )
    assert bad.status_code == 400 and "schedule" in bad.data
    unknown = api.post(
        "/api/v1/templates/", {"name": "t2", "defaults": {"colour": "red"}}, format="json"
    )
    assert unknown.data == {"defaults": ["not job fields a template can set: colour."]}
