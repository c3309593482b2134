"""The job rules, written once: the API and the admin refuse the same jobs with the same words.

One table of bad jobs runs through both doors; then ``clean_job`` itself, and
the field list the serializer, the admin form and its fieldsets share.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from config.celery import app as celery_app
from scheduler_app import payloads, validation
from scheduler_app.admin import JobAdmin, JobForm
from scheduler_app.api.serializers import JobSerializer
from scheduler_app.models import Job
from scheduler_app.payloads import KINDS
from scheduler_app.validation import JobRulesError, clean_job
from tests.helpers import make_job
from workers.executors import SUPPORTED_KINDS

GOOD = {
    "name": "good",
    "kind": "command",
    "payload": {"command": "echo hi"},
    "schedule": "*/5 * * * *",
    "timezone": "UTC",
}
MAX_TIMEOUT = settings.SCHEDULER_MAX_TIMEOUT
MAX_COMMAND = settings.SCHEDULER_MAX_COMMAND_BYTES
URL = "https://example.com/"
NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def http_to(url: str) -> dict[str, Any]:
    return {"kind": "http", "payload": {"url": url}}


# (overrides on GOOD, the field blamed, a fragment of its message)
BAD_JOBS: list[tuple[dict[str, Any], str, str]] = [
    ({"queue": "no spaces"}, "queue", "letters, digits, '_', '-' or '.'"),
    ({"queue": "q" * 65}, "queue", "must be 1-64 letters"),
    (
        {"timeout": MAX_TIMEOUT + 1},
        "timeout",
        f"must be less than or equal to {MAX_TIMEOUT} (SCHEDULER_MAX_TIMEOUT).",
    ),
    ({"timeout": 0}, "timeout", "must be greater than or equal to 1."),
    ({"env": {"1BAD": "x"}}, "env", "'1BAD' is not a valid variable name: use capital letters"),
    ({"env": {"lower": "x"}}, "env", "'lower' is not a valid variable name"),
    ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "env", "LD_PRELOAD is not allowed: it changes how"),
    ({"env": {"PYTHONWARNINGS": "x"}}, "env", "PYTHONWARNINGS is not allowed"),
    ({"env": {"BROWSER": "sh -c id"}}, "env", "BROWSER is not allowed"),
    ({"env": {"BASH_ENV": "/tmp/x"}}, "env", "BASH_ENV is not allowed"),
    ({"env": {"PATH": "/tmp"}}, "env", "PATH is not allowed"),
    ({"env": {"SCHEDULER_RUN_ID": "1"}}, "env", "SCHEDULER_RUN_ID is not allowed"),
    (
        {"kind": "celery", "payload": {"task": "workers.echo"}, "env": {"A": "1"}},
        "env",
        "a celery job runs one of the app's own tasks with the app's settings; it takes no env",
    ),
    ({"env": {"A": 5}}, "env", "A: Not a valid string."),
    ({"env": {"A": {"value": "x", "hidden": True}}}, "env", 'A: use a string, or {"value"'),
    ({"env": ["A=1"]}, "env", 'must be an object such as {"NAME": "value"}.'),
    ({"start_at": NOON, "end_at": NOON - timedelta(hours=1)}, "end_at", "later than start_at"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
    ({"schedule": "0 0 31 2 *"}, "schedule", "never fires"),
    ({"schedule": "61 * * * *"}, "schedule", "invalid cron expression"),
    ({"schedule": {"type": "once", "at": "2001-01-01T00:00:00Z"}}, "schedule", "in the past"),
    ({"payload": {"shell": "/bin/sh"}}, "payload", "'command' is required"),
    ({"payload": {"command": "ls", "shell": "bash"}}, "payload", "'shell' must be an absolute"),
    ({"kind": "teleport"}, "kind", '"teleport" is not a valid choice; the kinds are command'),
    ({"kind": "http"}, "payload", "'url' must be an http:// or https:// URL"),
    ({"kind": "python", "payload": {"code": " "}}, "payload", "'code' is required"),
    ({"kind": "script", "payload": {"path": "/etc/passwd"}}, "payload", "outside the directories"),
    ({"kind": "celery", "payload": {"task": "os.system"}}, "payload", "registered Celery task"),
    ({"priority": 10}, "priority", "must be less than or equal to 9."),
    ({"max_memory_mb": 1}, "max_memory_mb", "must be greater than or equal to 16."),
    ({"max_cpu_seconds": 0}, "max_cpu_seconds", "must be greater than or equal to 1."),
    ({"working_dir": "relative/dir"}, "working_dir", "must be an absolute path."),
    ({"working_dir": "/etc"}, "working_dir", "outside the directories jobs may use"),
    ({"window": {"start": "9am", "end": "17:00"}}, "window", "'start' must be HH:MM"),
    ({"window": {"days_of_week": [7], "start": "09:00", "end": "17:00"}}, "window", "0 (Monday)"),
    ({"notify_on": ["sometimes"]}, "notify_on", '"sometimes" is not a valid choice'),
    ({"notify_emails": ["not-an-address"]}, "notify_emails", "not a valid e-mail address"),
    ({"notify_emails": ["a@example.com"] * 51}, "notify_emails", "at most 50 e-mail addresses"),
    ({"notify_webhooks": ["ftp://example.com/x"]}, "notify_webhooks", "not a valid http://"),
    # The egress guard, where the URL says the address (the tests allow 127.0.0.1 only).
    (
        http_to("http://127.0.0.2:8000/api/v1/stats/"),
        "payload",
        "'url' refused: 127.0.0.2 is a loopback address; list it in SCHEDULER_HTTP_ALLOW",
    ),
    (http_to("http://10.1.2.3/"), "payload", "10.1.2.3 is a private address"),
    (
        http_to("http://169.254.169.254/latest/meta-data/"),
        "payload",
        "169.254.169.254 is a cloud metadata address",
    ),
    (http_to("http://[::ffff:169.254.169.254]/"), "payload", "is a cloud metadata address"),
    (http_to("https://[::1]/"), "payload", "::1 is a loopback address"),
    (http_to("http://0.0.0.0:8000/"), "payload", "0.0.0.0 is an unspecified address"),
    (http_to("http://2130706434/"), "payload", "2130706434 (127.0.0.2) is a loopback address"),
    (http_to("http://metadata.google.internal/"), "payload", "is a cloud metadata name"),
    (http_to("ftp://example.com/"), "payload", "'url' must be an http:// or https:// URL"),
    (
        {"notify_webhooks": ["http://192.168.1.10/hook"]},
        "notify_webhooks",
        "http://192.168.1.10/hook: refused: 192.168.1.10 is a private address; list it in "
        "SCHEDULER_HTTP_ALLOW to allow it.",
    ),
    (
        {"notify_webhooks": ["http://[fd00:ec2::254]/"]},
        "notify_webhooks",
        "fd00:ec2::254 is a cloud metadata address",
    ),
    ({"notify_webhooks": ["http://[fe80::1]/"]}, "notify_webhooks", "is a link-local address"),
    ({"notify_webhooks": ["http://224.0.0.1/"]}, "notify_webhooks", "is a multicast address"),
    ({"tags": ["ok", "x" * 65]}, "tags", "each tag must be 1-64 characters"),
    ({"tags": "nightly"}, "tags", "must be a list of strings."),
    ({"name": "nightly\r\nBcc: all@example.com"}, "name", "must not contain control characters"),
    ({"jitter": -1}, "jitter", "must be greater than or equal to 0."),
    ({"misfire_grace": 30 * 86400 + 1}, "misfire_grace", "less than or equal to 2592000."),
    ({"max_retries": 101}, "max_retries", "must be less than or equal to 100."),
    ({"retry_delay": -5}, "retry_delay", "must be greater than or equal to 0."),
    ({"max_concurrent": 0}, "max_concurrent", "must be greater than or equal to 1."),
    ({"quorum": 0}, "quorum", "must be greater than or equal to 1."),
    ({"alert_if_missed": 0}, "alert_if_missed", "must be greater than or equal to 1."),
    ({"alert_if_missed": 60, "schedule": "manual"}, "alert_if_missed", "a manual job has no slots"),
    ({"alert_if_late": 30 * 86400 + 1}, "alert_if_late", "less than or equal to 2592000."),
    ({"alert_if_longer": "sometimes"}, "alert_if_longer", 'seconds from 1 to 2592000, or "auto"'),
    ({"alert_if_longer": 0}, "alert_if_longer", 'seconds from 1 to 2592000, or "auto"'),
    # Hostile input (issue 8): refused here, not found at run time.
    ({"payload": {"command": "echo \x00 hi"}}, "payload", "must not contain a NUL character"),
    ({"payload": {"command": "echo \x1b[1m"}}, "payload", "other than tab and newline"),
    ({"payload": {"command": "true\r\n"}}, "payload", "found '\\r' at position 4"),
    ({"payload": {"command": "x" * (MAX_COMMAND + 1)}}, "payload", "SCHEDULER_MAX_COMMAND_BYTES"),
    ({"payload": {"command": "ls", "shell": "/bin/sh\n"}}, "payload", "'shell' must not contain"),
    (
        {"kind": "commands", "payload": {"commands": ["true", "echo \x07"]}},
        "payload",
        "'commands' item 2 must not",
    ),
    ({"kind": "commands", "payload": {"commands": ["true"] * 101}}, "payload", "at most 100"),
    ({"kind": "python", "payload": {"code": "print(1)\x00"}}, "payload", "NUL character"),
    ({"kind": "python", "payload": {"code": "#" * (MAX_COMMAND + 1)}}, "payload", "bytes; at most"),
    (
        {"kind": "http", "payload": {"url": URL, "headers": {"X-A": "a\r\nSet-Cookie: x=1"}}},
        "payload",
        "'headers' X-A must not contain control characters other than tab",
    ),
    ({"kind": "http", "payload": {"url": URL, "headers": {"X A": "1"}}}, "payload", "header name"),
    (
        {"kind": "http", "payload": {"url": URL, "headers": {"X-A": "\u20ac"}}},
        "payload",
        "ASCII only",
    ),
    ({"kind": "http", "payload": {"url": URL + "\n"}}, "payload", "'url' must not contain"),
    ({"env": {"A": "x\x00"}}, "env", "must not contain a NUL character"),
    ({"env": {"A": {"value": "s\x00", "secret": True}}}, "env", "NUL character"),
    ({"env": {"A": "a\rb"}}, "env", "A: the value must not contain control characters"),
    ({"env": {"A": "x" * 70000}}, "env", "at most 65536 are allowed (SCHEDULER_MAX_ENV_BYTES)"),
    ({"condition": "test -f x\x07"}, "condition", "the condition must not contain control"),
    ({"timezone": "localtime"}, "timezone", "'localtime' is not an IANA time zone of a place"),
    ({"timezone": "Factory"}, "timezone", "not an IANA time zone of a place"),
    ({"schedule": "0-59/99999999999999999999 * * * *"}, "schedule", "steps from 1 to 60"),
    ({"schedule": "0 0 * * 1#6"}, "schedule", "the day-of-week field takes #1 to #5"),
    ({"schedule": "0 0 32 * *"}, "schedule", "the day-of-month field allows 1-31; got 32"),
    ({"schedule": "0," * 600 + "0 * * * *"}, "schedule", "at most 1000 characters"),
    (
        {"schedule": {"type": "interval", "every": 400000, "unit": "weeks"}},
        "schedule",
        "'every' weeks must be at most 520 weeks",
    ),
    ({"schedule": "every 99999999999999999999 seconds"}, "schedule", "at most 520 weeks"),
    (
        {"schedule": {"type": "once", "at": "9999-12-31T23:59:59"}},
        "schedule",
        "'at' must be a date and time from 1970-01-02 to 2199-12-30",
    ),
    (
        {"schedule": {"type": "interval", "every": 5, "start_at": "9999-12-30T00:00:00Z"}},
        "schedule",
        "'start_at' must be a date and time from 1970-01-02",
    ),
    ({"start_at": datetime(9999, 12, 30, tzinfo=UTC)}, "start_at", "from 1970-01-02 to 2199"),
    ({"end_at": datetime(2200, 1, 1, tzinfo=UTC)}, "end_at", "from 1970-01-02 to 2199-12-30"),
    ({"start_at": datetime(1900, 1, 1, tzinfo=UTC)}, "start_at", "from 1970-01-02 to 2199"),
    ({"quorum": 2**63}, "quorum", "must be less than or equal to 1000."),
]
IDS = [f"{field}-{i}" for i, (_, field, _) in enumerate(BAD_JOBS)]

# What the admin's add form needs besides the job's own values (its inlines, its defaults).
ADMIN_FORM = {
    "dependencies-TOTAL_FORMS": 0,
    "dependencies-INITIAL_FORMS": 0,
    "runs-TOTAL_FORMS": 0,
    "runs-INITIAL_FORMS": 0,
}
ADMIN_DEFAULTS = {
    "enabled": True,
    "tags": [],
    "env": {},
    "notify_emails": [],
    "notify_webhooks": [],
    "notify_on": ["failure"],
    "jitter": 0,
    "misfire_grace": 60,
    "catchup": "once",
    "calendar_policy": "skip",
    "concurrency_policy": "forbid",
    "priority": 5,
    "queue": "default",
    "max_retries": 0,
    "retry_delay": 0,
    "target_mode": "each",
}
# Typed as JSON text in the admin (the schedule is not: a phrase is typed as it is).
JSON_FIELDS = {"tags", "env", "payload", "window", "notify_emails", "notify_webhooks", "notify_on"}


def as_form(job: dict[str, Any], owner_id: int) -> dict[str, Any]:
    """The job as the admin's add form posts it: JSON as text, a date and a time apart."""
    data: dict[str, Any] = {**ADMIN_FORM, "owner": owner_id}
    for name, value in {**ADMIN_DEFAULTS, **job}.items():
        if isinstance(value, datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.strftime("%Y-%m-%d %H:%M:%S").split()
        elif name in JSON_FIELDS or isinstance(value, dict | list):
            data[name] = json.dumps(value)
        elif value is True:
            data[name] = "on"
        elif value is not False:
            data[name] = value
    return data


def api_errors(api: APIClient, job: dict[str, Any]) -> dict[str, list[str]]:
    response = api.post("/api/v1/jobs/", job, format="json")
    assert response.status_code == 400, response.data
    return {field: [str(m) for m in messages] for field, messages in response.data.items()}


def admin_errors(client: Client, owner_id: int, job: dict[str, Any]) -> dict[str, list[str]]:
    response = client.post("/admin/scheduler_app/job/add/", as_form(job, owner_id))
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return {field: list(messages) for field, messages in form.errors.items()}


@pytest.mark.parametrize(("change", "field", "message"), BAD_JOBS, ids=IDS)
def test_the_api_and_the_admin_refuse_a_bad_job_alike(
    api, admin_client, admin_user, change, field, message
):
    job = {**GOOD, **change}
    through_api = api_errors(api, job)
    through_admin = admin_errors(admin_client, admin_user.id, job)
    assert list(through_api) == [field]
    assert message in through_api[field][0]
    assert through_admin == through_api
    assert not Job.objects.exists()


def test_the_good_job_passes_both_doors(api, admin_client, admin_user):
    assert api.post("/api/v1/jobs/", GOOD, format="json").status_code == 201
    job = {**GOOD, "name": "good too"}
    response = admin_client.post("/admin/scheduler_app/job/add/", as_form(job, admin_user.id))
    assert response.status_code == 302
    saved = Job.objects.get(name="good too")
    assert saved.schedule == {"type": "cron", "expression": "*/5 * * * *"}
    assert saved.payload == {"command": "echo hi", "shell": "/bin/sh"}


def test_every_broken_rule_is_named_at_once(api):
    bad = {**GOOD, "queue": "a b", "priority": 10, "env": {"1X": "y"}, "working_dir": "rel"}
    assert set(api_errors(api, bad)) == {"queue", "priority", "env", "working_dir"}


# --- clean_job itself ---------------------------------------------------------------


def rules_broken(data: dict[str, Any], stored: dict[str, Any] | None = None) -> dict:
    with pytest.raises(JobRulesError) as caught:
        clean_job(data, stored)
    return caught.value.errors


def test_it_returns_the_values_normalised(settings, tmp_path):
    settings.SCHEDULER_ALLOWED_DIRS = [str(tmp_path)]
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    cleaned = clean_job(
        {
            **GOOD,
            "kind": "http",
            "payload": {"url": "https://example.com/", "method": "post"},
            "schedule": "daily at 10:30",
            "window": {},
            "working_dir": str(tmp_path / "link"),
        }
    )
    assert cleaned["schedule"] == {"type": "daily", "time": "10:30"}
    assert cleaned["payload"]["method"] == "POST"
    assert cleaned["payload"]["expect_status"] == [200]
    assert cleaned["window"] is None
    assert cleaned["working_dir"] == os.path.realpath(tmp_path / "real")
    assert cleaned["name"] == "good"


def test_a_field_not_given_is_not_judged():
    assert clean_job({}) == {}
    assert clean_job({"payload": {"command": "true"}})["payload"]["shell"] == "/bin/sh"


def test_all_errors_come_at_once():
    errors = rules_broken({**GOOD, "queue": "", "priority": -1, "tags": [1]})
    assert set(errors) == {"queue", "priority", "tags"}
    assert all(len(messages) == 1 for messages in errors.values())


def test_a_rule_reading_a_wrong_field_waits_for_it():
    errors = rules_broken({**GOOD, "timezone": "Nowhere/Else", "schedule": "whenever"})
    assert set(errors) == {"timezone"}
    errors = rules_broken({**GOOD, "kind": "ftp", "payload": "not even an object"})
    assert set(errors) == {"kind"}


def test_the_timeout_cap_is_read_when_judged(settings):
    settings.SCHEDULER_MAX_TIMEOUT = 60
    errors = rules_broken({"timeout": 61})
    assert errors == {"timeout": ["must be less than or equal to 60 (SCHEDULER_MAX_TIMEOUT)."]}
    assert clean_job({"timeout": 60}) == {"timeout": 60}


def test_non_numbers_are_refused_by_the_rules_too():
    assert rules_broken({"priority": "5"}) == {"priority": ["must be a whole number."]}
    assert rules_broken({"priority": True}) == {"priority": ["must be a whole number."]}


def test_a_stored_value_left_as_it_was_is_not_judged_again():
    past = {"type": "once", "at": "2001-01-01T00:00:00Z"}
    stored = {**GOOD, "schedule": past}
    assert clean_job({**stored, "name": "renamed"}, stored)["schedule"] == past
    assert "in the past" in rules_broken(stored)["schedule"][0]
    moved = {**stored, "timezone": "Europe/Paris"}
    assert "in the past" in rules_broken(moved, stored)["schedule"][0]


def test_a_secret_sent_back_masked_keeps_its_stored_value():
    stored = {"env": {"TOKEN": {"value": "s3cret", "secret": True}, "A": "1"}}
    masked = {"TOKEN": {"value": validation.MASK, "secret": True}, "A": "2"}
    cleaned = clean_job({"env": masked}, stored)
    assert cleaned["env"] == {"TOKEN": {"value": "s3cret", "secret": True}, "A": "2"}
    with pytest.raises(JobRulesError, match="at least 4 characters"):
        clean_job({"env": masked})  # a new job has nothing to keep: *** is its secret, too short


# --- Job.clean, and the API's updates ---------------------------------------------------


def test_job_full_clean_applies_the_rules_and_normalises(owner):
    job = Job(owner=owner, name="m", payload={"command": "true"}, schedule="hourly")
    job.full_clean(exclude={"schedule_start"})  # save() sets it
    assert job.schedule == {"type": "hourly", "minute": 0}
    assert job.payload == {"command": "true", "shell": "/bin/sh"}
    job.queue, job.priority = "no spaces", 10
    with pytest.raises(ValidationError) as caught:
        job.full_clean(exclude={"schedule_start"})
    assert set(caught.value.message_dict) == {"queue", "priority"}


def test_job_clean_leaves_a_passed_one_time_schedule_alone(owner):
    job = make_job(owner, name="once", schedule={"type": "once", "at": "2001-01-01T00:00:00Z"},
    )  # fmt: skip
    job = Job.objects.get(pk=job.pk)
    job.description = "edited"
    job.full_clean()
    job.timezone = "Europe/Paris"
    with pytest.raises(ValidationError, match="in the past"):
        job.full_clean()


def test_a_partial_update_of_a_passed_one_time_job_is_accepted(api, owner):
    job = make_job(owner, name="once", schedule={"type": "once", "at": "2001-01-01T00:00:00Z"},
    )  # fmt: skip
    response = api.patch(f"/api/v1/jobs/{job.id}/", {"description": "later"}, format="json")
    assert response.status_code == 200, response.data


def test_a_masked_secret_sent_back_through_the_api_is_kept(api):
    env = {"TOKEN": {"value": "s3cret", "secret": True}}
    job = api.post("/api/v1/jobs/", {**GOOD, "env": env}, format="json").data
    assert job["env"] == {"TOKEN": {"value": validation.MASK, "secret": True}}
    response = api.put(f"/api/v1/jobs/{job['id']}/", {**GOOD, "env": job["env"]}, format="json")
    assert response.status_code == 200, response.data
    assert Job.objects.get(id=job["id"]).env == env


def test_the_admin_changes_a_job_under_the_same_rules(admin_client, admin_user):
    job = make_job(
        admin_user, name="edit me", schedule={"type": "once", "at": "2001-01-01T00:00:00Z"}
    )
    url = f"/admin/scheduler_app/job/{job.id}/change/"
    form = as_form({**GOOD, "name": "edit me", "schedule": job.schedule}, admin_user.id)
    assert admin_client.post(url, form).status_code == 302
    response = admin_client.post(url, {**form, "priority": 10})
    errors = response.context["adminform"].form.errors
    assert errors == {"priority": ["must be less than or equal to 9."]}


# --- the field list, written once --------------------------------------------------


def test_the_serializer_writes_exactly_the_job_fields():
    fields = JobSerializer().fields
    writable = {name for name, field in fields.items() if not field.read_only}
    assert writable == {*validation.JOB_FIELDS, "depends_on", "team"}


def test_the_schema_shows_the_bounds_the_rules_check():
    fields = JobSerializer().fields
    assert (fields["priority"].min_value, fields["priority"].max_value) == (0, 9)
    assert fields["timeout"].max_value == settings.SCHEDULER_MAX_TIMEOUT
    assert fields["priority"].validators == []  # the rules judge, in their own words


def test_the_admin_form_and_fieldsets_cover_exactly_the_job_fields():
    assert JobForm.Meta.fields == ["owner", "team", *validation.JOB_FIELDS]
    shown = flatten_fieldsets(JobAdmin.fieldsets)
    extra = ["from_template"]  # hidden: the template a new job is made from
    assert sorted(shown) == sorted({*JobForm.Meta.fields, *JobAdmin.readonly_fields, *extra})
    assert len(shown) == len(set(shown))


def test_the_rules_know_every_kind():
    assert list(KINDS) == list(Job.Kind.values) == list(SUPPORTED_KINDS)
    assert set(validation.RULED_FIELDS) <= set(validation.JOB_FIELDS)


def test_a_job_may_call_no_task_of_the_scheduler_but_the_sample():
    from_workers = {name for name in celery_app.tasks if name.startswith("workers.")}
    callable_ones = payloads.registered_tasks()
    assert "workers.echo" in callable_ones
    assert from_workers - {"workers.echo"} and not (from_workers - {"workers.echo"}) & callable_ones
    with pytest.raises(payloads.PayloadError, match="registered Celery task"):
        payloads.KINDS["celery"]({"task": "workers.kill_orphan", "args": [{}]})
