"""Hostile input (issue 8): every request does bounded work, and bad input is a 4xx at once.

Far-future dates, huge intervals, steps and counts, deep or oversized JSON: each is
refused with a message naming the field, quickly. Jobs at the very edge of what is
allowed are accepted, and then no endpoint fails or crawls because of them, for
their owner or for staff. (The refusals of control characters and sizes are rows of
the one table of bad jobs in tests/test_validation.py, through the API and the admin.)

Timings are bounded generously (``SLOW``): the machine is shared; the cases this
catches took 10 to 50 seconds before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from scheduler_app.models import Job, Run
from tests.helpers import client_for, make_job

SLOW = 5.0  # seconds; what took 10-50 s before takes well under one
PREVIEW = "/api/v1/schedules/preview/"
JOB = {"name": "edge", "payload": {"command": "true"}, "schedule": "hourly"}


def timed(call: Callable[[], Any]) -> Any:
    start = time.monotonic()
    response = call()
    elapsed = time.monotonic() - start
    assert elapsed < SLOW, f"took {elapsed:.1f} s"
    return response


# (the body, the field blamed, a fragment of its message)
BAD_PREVIEWS: list[tuple[dict[str, Any], str, str]] = [
    ({"schedule": {"type": "once", "at": "9999-12-31T23:59:59"}}, "schedule", "2199-12-30"),
    ({"schedule": {"type": "once", "at": "4000-01-01T00:00:00"}}, "schedule", "2199-12-30"),
    ({"schedule": {"type": "once", "at": "0001-01-01T00:00:00+05:00"}}, "schedule", "1970-01-02"),
    ({"schedule": {"type": "once", "at": "9999-12-31T23:59:59-12:00"}}, "schedule", "2199-12-30"),
    (
        {"schedule": {"type": "interval", "every": 1000000000, "unit": "weeks"}},
        "schedule",
        "at most 520 weeks",
    ),
    ({"schedule": "every 99999999999999999999 seconds"}, "schedule", "at most 520 weeks"),
    ({"schedule": "every " + "9" * 5000 + " seconds"}, "schedule", "at most 1000 characters"),
    ({"schedule": "every 5 minutes", "start_at": "9999-12-30T00:00:00Z"}, "start_at", "2199"),
    ({"schedule": "every 5 minutes", "end_at": "9999-12-31T23:59:59-12:00"}, "end_at", "range"),
    ({"schedule": "0-59/99999999999999999999 * * * *"}, "schedule", "steps from 1 to 60"),
    ({"schedule": "*/0 * * * *"}, "schedule", "steps from 1 to 60"),
    ({"schedule": "0 99999999999999999999 * * *"}, "schedule", "hour field allows 0-23"),
    ({"schedule": "hourly", "count": 10**30}, "count", "less than or equal to 100"),
    ({"schedule": "hourly", "jitter": 10**30}, "jitter", "less than or equal to 86400"),
    ({"schedule": "hourly", "timezone": "localtime"}, "timezone", "not an IANA time zone"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_PREVIEWS)
def test_a_hostile_preview_is_a_400_naming_the_field_at_once(api, body, field, message):
    response = timed(lambda: api.post(PREVIEW, body, format="json"))
    assert response.status_code == 400, response.data
    assert list(response.data) == [field]
    assert message in str(response.data[field][0])


def test_a_rare_schedule_stops_at_the_horizon_and_says_so(api):
    body = {"schedule": "0 0 29 2 *", "timezone": "Europe/Paris", "count": 100}
    response = timed(lambda: api.post(PREVIEW, body, format="json"))
    assert response.status_code == 200
    runs = response.data["next_runs"]
    assert 30 < len(runs) < 100 and runs[-1] < "2200"
    assert "No fire time at or after 2200-01-01T00:00:00Z is computed." in response.data["warnings"]


def test_a_preview_that_skips_almost_everything_stops_within_its_budget(api):
    every_second = [f"{second} * * * * *" for second in range(20)]
    window = {"days_of_week": [0], "start": "09:00", "end": "09:01"}
    body = {"schedule": every_second, "window": window, "count": 100}
    response = timed(lambda: api.post(PREVIEW, body, format="json"))
    assert response.status_code == 200
    assert any("Stopped early" in warning for warning in response.data["warnings"])


# --- jobs at the edge of what is allowed, then every endpoint -----------------------

WINDOW = {"days_of_week": [0], "start": "09:00", "end": "09:01"}
EDGE_JOBS: list[dict[str, Any]] = [
    {"schedule": {"type": "interval", "every": 520, "unit": "weeks"}},
    {"schedule": {"type": "interval", "every": 5, "start_at": "2199-12-30T23:59:59"}},
    {"schedule": "every 10 minutes", "start_at": "2199-12-30T23:00:00Z", "jitter": 86400},
    {"schedule": {"type": "once", "at": "2199-12-30T23:59:59"}, "timezone": "Pacific/Kiritimati"},
    {"schedule": {"type": "once", "at": "2199-12-30T23:59:59"}, "timezone": "Pacific/Pago_Pago"},
    {"schedule": "0 0 29 2 1", "timezone": "Europe/Paris"},
    {"schedule": "* * * * * *", "window": WINDOW, "timezone": "Australia/Lord_Howe"},
    {"schedule": [f"{second} * * * * *" for second in range(20)], "window": WINDOW},
    {"schedule": "0 0 29 2 *", "end_at": "2199-12-30T00:00:00Z", "calendar_policy": "shift"},
    {"schedule": "daily", "start_at": "1970-01-02T00:00:00Z", "end_at": "2199-12-30T23:59:59Z"},
]


@pytest.fixture
def staff_api(admin_user) -> APIClient:
    return client_for(admin_user)


def test_jobs_at_the_edge_break_no_endpoint_for_their_owner_or_staff(api, staff_api):
    ids = []
    for index, fields in enumerate(EDGE_JOBS):
        body = {**JOB, "name": f"edge {index}", **fields}
        response = timed(lambda body=body: api.post("/api/v1/jobs/", body, format="json"))
        assert response.status_code == 201, (fields, response.data)
        ids.append(response.data["id"])
    for client in (api, staff_api):
        for url in ("/api/v1/jobs/", "/api/v1/next-runs/?count=100", "/api/v1/stats/"):
            response = timed(lambda url=url, client=client: client.get(url))
            assert response.status_code == 200, (url, response.data)
        for job_id in ids:
            for url in (f"/api/v1/jobs/{job_id}/", f"/api/v1/jobs/{job_id}/next-runs/?count=100"):
                response = timed(lambda url=url, client=client: client.get(url))
                assert response.status_code == 200, (url, response.data)
                next_runs = response.data.get("next_runs", [])
                assert all(run < "2200" for run in next_runs), (url, next_runs)


def test_a_jobs_next_runs_say_when_the_horizon_cut_them(api):
    body = {**JOB, "schedule": {"type": "interval", "every": 520, "unit": "weeks"}}
    job = api.post("/api/v1/jobs/", body, format="json").data
    response = api.get(f"/api/v1/jobs/{job['id']}/next-runs/?count=100")
    assert 10 < len(response.data["next_runs"]) < 100
    assert response.data["warnings"] == [
        "No fire time at or after 2200-01-01T00:00:00Z is computed."
    ]


def test_no_fire_time_past_the_horizon_even_for_a_job_stored_before_the_rules(owner, api):
    """Rows written before these rules (straight to the database) do not break either."""
    huge = {"type": "interval", "every": 400000, "unit": "weeks"}
    job = make_job(owner, name="old", schedule=huge)
    assert job.next_run_at is None or job.next_run_at.year < 2200
    for url in (f"/api/v1/jobs/{job.id}/next-runs/?count=100", "/api/v1/next-runs/"):
        response = timed(lambda url=url: api.get(url))
        assert response.status_code == 200 and response.data["next_runs"] == []


# --- request bodies: depth and size -------------------------------------------------


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [33, 900, 100_000])
def test_json_nested_too_deep_is_a_400_with_a_json_message(api, settings, depth):
    settings.DEBUG = True  # JSON even so, not Django's debug page
    body = '{"name": "deep", "schedule": "hourly", "payload": ' + nested(depth) + "}"
    response = timed(lambda: api.post("/api/v1/jobs/", body, content_type="application/json"))
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "nested more than 32 levels" in response.json()["detail"]
    assert not Job.objects.exists()


def test_json_nested_within_the_limit_is_read(api):
    payload = {"command": "true", "note": json.loads(nested(25))}
    body = {**JOB, "payload": payload}
    assert api.post(PREVIEW, {"schedule": "hourly"}, format="json").status_code == 200
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.data


def test_a_body_over_the_limit_is_a_413_with_a_json_message(api, settings, client):
    settings.DEBUG = True
    big = json.dumps({**JOB, "description": "x" * (2 * 1024 * 1024)})
    response = timed(lambda: api.post("/api/v1/jobs/", big, content_type="application/json"))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than 1048576 bytes (API_MAX_BODY_BYTES)" in response.json()["detail"]
    # A form too: the login page, without logging in.
    form = {"username": "x", "password": "y" * (2 * 1024 * 1024)}
    response = client.post("/admin/login/", form)
    assert response.status_code == 413 and response.json()["detail"].startswith("The request")
    assert not Job.objects.exists()


def test_a_multipart_file_over_the_limit_is_a_413_before_any_login(client):
    upload = SimpleUploadedFile("big.bin", b"x" * (2 * 1024 * 1024))
    response = client.post("/api/v1/auth/token/", {"username": "x", "password": "y", "f": upload})
    assert response.status_code == 413 and "API_MAX_BODY_BYTES" in response.json()["detail"]


def test_a_body_under_the_limit_but_over_the_parser_read_is_still_bounded(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({**JOB, "description": "x" * 2000})
    response = api.post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]


def test_huge_and_strange_numbers_in_json_are_a_400(api):
    for text in ("9" * 5000, "NaN", "Infinity", "1e999999"):
        body = '{"name": "n", "schedule": "hourly", "payload": {"command": "true"}, '
        body += f'"priority": {text}}}'
        response = timed(
            lambda b=body: api.post("/api/v1/jobs/", b, content_type="application/json")
        )
        assert response.status_code == 400, (text, response.data)
    assert not Job.objects.exists()


def test_an_infinite_number_in_a_json_field_is_a_400_not_a_database_error(api):
    body = '{"name": "n", "schedule": "hourly", "payload": {"command": "true", "n": 1e999}}'
    response = api.post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 400 and "too large a number" in response.json()["detail"]


# --- filters that would tell which ids exist ------------------------------------------


def test_a_filter_on_another_users_job_answers_like_a_missing_one(api, outsider_api, owner):
    job = make_job(owner, name="mine")
    Run.objects.create(job=job, trigger="manual", scheduled_for=job.schedule_start)
    assert len(api.get(f"/api/v1/runs/?job={job.id}").data["results"]) == 1
    for path in ("runs", "alerts"):
        theirs = outsider_api.get(f"/api/v1/{path}/?job={job.id}")
        missing = outsider_api.get(f"/api/v1/{path}/?job={job.id + 1000}")
        assert theirs.status_code == missing.status_code == 200
        assert theirs.data == missing.data and theirs.data["results"] == []
        huge = outsider_api.get(f"/api/v1/{path}/?job={10**30}")
        assert huge.status_code == 400  # the same for everyone: not an id at all


def test_a_template_holding_a_nul_is_refused(api):
    body = {"name": "t", "defaults": {"payload": {"command": "echo \x00"}}}
    response = api.post("/api/v1/templates/", body, format="json")
    assert response.status_code == 400 and "NUL" in str(response.data["defaults"][0])
