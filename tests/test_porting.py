"""GET /api/v1/export/ and POST /api/v1/import/ through the API: who sees and writes
what, dry runs, refusals, the round trip, secrets, and hostile files."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler_app.models import AuditEvent, Calendar, Job, JobDependency, JobTemplate
from tests.helpers import create_job, make_job

EXPORT, IMPORT = "/api/v1/export/", "/api/v1/import/"
HTTP = {"url": "https://example.com/health", "method": "GET"}
CRONTAB = "*/5 * * * * echo five\n0 3 * * * echo three\n@reboot echo boot\n"


def do_import(client, content: str, fmt: str = "crontab", **options) -> dict:
    response = client.post(IMPORT, {"format": fmt, "content": content, **options}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def rows() -> tuple[int, ...]:
    return (Job.objects.count(), JobTemplate.objects.count(), Calendar.objects.count(),
            JobDependency.objects.count(), AuditEvent.objects.count())  # fmt: skip


# --- export ---------------------------------------------------------------------------


def test_export_holds_only_what_the_caller_may_see(world):
    # A dependency on a job the caller cannot see does not tell its name.
    JobDependency.objects.create(job=world.code_job, upstream=world.private)
    document = world.api("viewer").get(EXPORT).json()
    backup = next(job for job in document["jobs"] if job["name"] == "backup")
    assert backup["depends_on"] == [] and "mine" not in json.dumps(document)
    assert document["cronfleet"] == 1 and document["exported_at"].endswith("Z")
    assert {job["name"] for job in document["jobs"]} == {"backup", "ping"}
    assert [t["name"] for t in document["templates"]] == ["nightly"]
    assert [c["name"] for c in document["calendars"]] == ["holidays"]
    outsider = world.api("outsider").get(EXPORT).json()
    assert [job["name"] for job in outsider["jobs"]] == ["mine"]
    assert outsider["templates"] == outsider["calendars"] == []
    # Another user's job asked for by id is simply not there.
    asked = world.api("outsider").get(EXPORT, {"job": [world.code_job.pk]}).json()
    assert asked["jobs"] == []


def test_export_references_by_name_and_filters_by_job(api, owner):
    calendar = Calendar.objects.create(owner=owner, name="holidays", dates=["2026-12-25"])
    upstream = make_job(owner, name="extract")
    job = make_job(owner, name="load", calendar=calendar)
    JobDependency.objects.create(job=job, upstream=upstream, on="always")
    make_job(owner, name="other")
    document = api.get(EXPORT, {"job": [job.pk]}).json()
    [entry] = document["jobs"]
    assert entry["calendar"] == "holidays" and entry["team"] is None
    assert entry["depends_on"] == [{"job": "extract", "on": "always"}]
    assert [c["name"] for c in document["calendars"]] == ["holidays"]


def test_yaml_export_is_yaml(api, owner):
    make_job(owner, name="a")
    response = api.get(EXPORT, {"format": "yaml"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(response.content)["jobs"][0]["name"] == "a"


def test_secrets_are_left_out_unless_asked_and_allowed_and_then_audited(world):
    env = {"TOKEN": {"value": "s3cret-value", "secret": True}, "PLAIN": "visible"}
    job = Job.objects.get(pk=world.code_job.pk)
    job.env, job.notify_webhooks = env, ["https://hooks.example.com/T0KEN"]
    job.save()
    masked = world.api("admin").get(EXPORT).json()
    entry = next(j for j in masked["jobs"] if j["name"] == "backup")
    assert entry["env"] == {"TOKEN": {"value": "***", "secret": True},
                            "PLAIN": {"value": "***", "secret": False}}  # fmt: skip
    assert entry["notify_webhooks"] == ["***"]
    assert "s3cret" not in json.dumps(masked)
    assert not AuditEvent.objects.filter(action="export").exists()
    # A viewer asking for secrets gets none: they may not edit the job.
    viewer = world.api("viewer").get(EXPORT, {"include_secrets": "true"}).json()
    assert "s3cret" not in json.dumps(viewer) and "T0KEN" not in json.dumps(viewer)
    assert not AuditEvent.objects.filter(action="export").exists()
    clear = world.api("admin").get(EXPORT, {"include_secrets": "true"}).json()
    entry = next(j for j in clear["jobs"] if j["name"] == "backup")
    assert entry["env"] == env and entry["notify_webhooks"] == ["https://hooks.example.com/T0KEN"]
    event = AuditEvent.objects.get(action="export", job_id=job.pk)
    assert event.actor_name == "admin" and event.via == "api"


def shared_rows(owner, team, count: int, prefix: str) -> None:
    """``count`` team jobs (a command, a file, a software job in turn) on a shared calendar,
    each after the one before, and as many templates."""
    calendar = Calendar.objects.create(owner=owner, team=team, name=f"{prefix}-cal",
                                       dates=["2026-12-25"])  # fmt: skip
    payloads = [("command", {"command": "true"}), ("file", {"files": [1], "target_path": "/t"}),
                ("software", {"packages": [{"name": "tool", "version": "2"}]})]  # fmt: skip
    before = None
    for index in range(count):
        kind, payload = payloads[index % len(payloads)]
        job = make_job(owner, name=f"{prefix}-{index}", team=team, calendar=calendar, kind=kind,
                       payload=payload, env={"T": {"value": "s", "secret": True}})  # fmt: skip
        if before is not None:
            JobDependency.objects.create(job=job, upstream=before)
        before = job
        JobTemplate.objects.create(owner=owner, team=team, name=f"{prefix}-t{index}")


def test_export_costs_the_same_queries_for_any_number_of_rows(owner, team, teammate_api):
    """Rights are read once (not a membership query per job, calendar and upstream), and
    the rows exported with their secrets are audited in one statement."""
    shared_rows(owner, team, 3, "few")
    with CaptureQueriesContext(connection) as few:
        small = teammate_api.get(EXPORT, {"include_secrets": "true"}).json()
    shared_rows(owner, team, 9, "many")
    with CaptureQueriesContext(connection) as many:
        large = teammate_api.get(EXPORT, {"include_secrets": "true"}).json()

    assert (len(small["jobs"]), len(large["jobs"])) == (3, 12)
    assert len(many) == len(few)
    assert AuditEvent.objects.filter(action="export").count() == 2 * (3 + 12)
    entry = next(job for job in large["jobs"] if job["name"] == "many-1")
    assert entry["calendar"] == "many-cal"
    assert entry["depends_on"] == [{"job": "many-0", "on": "success"}]
    assert entry["env"] == {"T": {"value": "s", "secret": True}}


def test_export_rejects_a_bad_query(api):
    assert api.get(EXPORT, {"job": "x"}).status_code == 400
    assert api.get(EXPORT, {"include_secrets": "maybe"}).status_code == 400
    assert api.get(EXPORT, {"format": "xml"}).status_code == 404  # DRF: no such renderer


# --- import: writes, dry runs, refusals -------------------------------------------------


def test_a_dry_run_writes_nothing_and_says_what_would_happen(api):
    before = rows()
    report = do_import(api, CRONTAB, dry_run=True)
    assert rows() == before
    assert report["dry_run"] is True
    assert report["summary"] == {"create": 2, "update": 0, "unchanged": 0, "refused": 1}
    assert [item["line"] for item in report["items"]] == [1, 2, 3]
    assert len(report["items"][0]["next_runs"]) == 3
    # ?dry_run=1 as well, and a real import then does what the dry run said.
    response = api.post(f"{IMPORT}?dry_run=1", {"format": "crontab", "content": CRONTAB},
                        format="json")  # fmt: skip
    assert response.json()["dry_run"] is True and rows() == before
    real = do_import(api, CRONTAB)
    assert real["summary"] == report["summary"]
    assert [i["name"] for i in real["items"]] == [i["name"] for i in report["items"]]
    assert Job.objects.count() == before[0] + 2


def test_refused_items_do_not_block_the_others_and_audit_records_each(api, owner):
    report = do_import(api, CRONTAB)
    assert [item["action"] for item in report["items"]] == ["create", "create", "refused"]
    assert "@reboot" in report["items"][2]["errors"]["schedule"][0]
    created = Job.objects.filter(owner=owner)
    assert created.count() == 2
    for job in created:
        assert AuditEvent.objects.filter(job_id=job.pk, action="create", via="api").exists()


def test_a_second_import_is_unchanged_then_an_update(api, owner):
    do_import(api, CRONTAB)
    again = do_import(api, CRONTAB)
    assert again["summary"] == {"create": 0, "update": 0, "unchanged": 2, "refused": 1}
    changes = AuditEvent.objects.filter(action="change").count()
    job = Job.objects.get(owner=owner, name="echo-five")
    job.timeout = 30
    job.save()
    third = do_import(api, CRONTAB)
    assert third["summary"]["update"] == 0  # timeout is not in a crontab: left as it is
    assert AuditEvent.objects.filter(action="change").count() == changes + 1
    changed = do_import(api, CRONTAB.replace("*/5", "*/10"))
    assert changed["items"][0]["action"] == "update"
    assert Job.objects.get(pk=job.pk).schedule["expression"] == "*/10 * * * *"
    skipped = do_import(api, CRONTAB.replace("*/5", "*/7"), on_conflict="skip")
    assert skipped["items"][0]["action"] == "unchanged"
    assert Job.objects.get(pk=job.pk).schedule["expression"] == "*/10 * * * *"


def test_another_users_job_of_the_same_name_is_never_touched(world):
    report = do_import(world.api("outsider"), "0 1 * * * echo backup\n", crontab_system=False)
    assert report["items"][0]["action"] == "refused"  # the outsider lacks the code right
    assert "scheduler_app.run_code" in json.dumps(report["items"][0]["errors"])
    document = world.api("admin").get(EXPORT).json()
    backup = next(j for j in document["jobs"] if j["name"] == "backup")
    before = Job.objects.get(pk=world.code_job.pk).payload
    # The coder (an editor of the team) imports a job named like the team's "backup".
    report = do_import(world.api("coder"), json.dumps(
        {"cronfleet": 1, "jobs": [{**backup, "payload": {"command": "echo mine"}}]}
    ), "cronfleet")  # fmt: skip
    assert report["items"][0]["action"] == "create"
    assert Job.objects.get(pk=world.code_job.pk).payload == before
    mine = Job.objects.get(owner=world.users["coder"], name="backup")
    assert mine.payload["command"] == "echo mine" and mine.team == world.team


def test_a_user_without_the_code_right_imports_http_jobs_only(world):
    editor = world.api("editor")
    document = {"cronfleet": 1, "jobs": [
        {"name": "hit", "kind": "http", "payload": HTTP, "schedule": "@hourly"},
        {"name": "shell", "kind": "command", "payload": {"command": "id"}, "schedule": "@hourly"},
    ]}  # fmt: skip
    report = do_import(editor, json.dumps(document), "cronfleet")
    assert [i["action"] for i in report["items"]] == ["create", "refused"]
    assert "scheduler_app.run_code" in report["items"][1]["errors"]["detail"][0]
    assert list(Job.objects.filter(owner=world.users["editor"]).values_list("name", flat=True)) == [
        "hit"
    ]


def test_multipart_upload(api):
    upload = SimpleUploadedFile("crontab", CRONTAB.encode(), content_type="text/plain")
    response = api.post(IMPORT, {"format": "crontab", "file": upload, "dry_run": "true"},
                        format="multipart")  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["summary"]["create"] == 2


def test_field_errors_name_the_field(api):
    bad = api.post(IMPORT, {"format": "zip", "content": ""}, format="json")
    assert bad.status_code == 400 and "format" in bad.json()
    assert "content" in api.post(IMPORT, {"format": "crontab"}, format="json").json()
    zone = api.post(IMPORT, {"format": "crontab", "content": "", "timezone": "Mars/Base"},
                    format="json")  # fmt: skip
    assert zone.status_code == 400 and "timezone" in zone.json()


# --- the round trip ---------------------------------------------------------------------


def comparable(document: dict) -> dict:
    return {key: document[key] for key in ("jobs", "templates", "calendars")}


def test_export_delete_import_reproduces_everything(api, owner, team):
    calendar = api.post("/api/v1/calendars/", {"name": "holidays", "dates": ["2026-12-25"],
                        "team": team.pk}, format="json").json()  # fmt: skip
    api.post("/api/v1/templates/", {"name": "nightly", "defaults": {
        "payload": {"command": "true"}, "schedule": "manual",
        "env": {"KEY": {"value": "template-secret", "secret": True}}}}, format="json")  # fmt: skip
    first = create_job(
        api, name="extract", payload={"command": "echo extract", "shell": "/bin/bash"},
        schedule="0 9 * * 1-5", timezone="Europe/Paris", tags=["etl", "daily"],
        description="first\nstep", timeout=600, max_retries=3, retry_delay=30,
        retry_backoff=True, window={"days_of_week": [0, 1, 2, 3, 4], "start": "08:00",
        "end": "18:00"}, jitter=5, calendar=calendar["id"], calendar_policy="shift",
        misfire_grace=120, catchup="all", concurrency_policy="queue_one", priority=7,
        queue="etl", env={"PLAIN": "v", "SECRET": {"value": "hunter22", "secret": True}},
        notify_emails=["ops@example.com"], notify_webhooks=["https://hooks.example.com/x"],
        notify_on=["failure", "recovery"], alert_if_late=300, alert_if_longer="auto",
        end_at="2030-01-01T00:00:00Z", team=team.pk, enabled=False,
    )  # fmt: skip
    create_job(api, name="load", kind="http", payload=HTTP, schedule="every 30 seconds",
               depends_on=[{"job": first["id"], "on": "failure"}], max_memory_mb=64,
               alert_if_missed=600)  # fmt: skip
    exported = api.get(EXPORT, {"include_secrets": "true"}).json()
    assert len(exported["jobs"]) == 2
    Job.objects.all().delete()
    JobTemplate.objects.all().delete()
    Calendar.objects.all().delete()
    report = do_import(api, yaml.safe_dump(exported), "cronfleet")
    assert report["summary"] == {"create": 4, "update": 0, "unchanged": 0, "refused": 0}
    again = api.get(EXPORT, {"include_secrets": "true"}).json()
    assert comparable(again) == comparable(exported)
    assert Job.objects.get(name="extract").env["SECRET"] == {"value": "hunter22", "secret": True}
    # Imported once more: nothing changes.
    assert do_import(api, json.dumps(exported), "cronfleet")["summary"]["unchanged"] == 4


def test_a_file_without_secrets_keeps_the_stored_ones(api, owner):
    create_job(api, name="s", payload={"command": "true"}, schedule="@daily",
               env={"SECRET": {"value": "hunter22", "secret": True}},
               notify_webhooks=["https://hooks.example.com/x"])  # fmt: skip
    masked = api.get(EXPORT).json()
    assert do_import(api, json.dumps(masked), "cronfleet")["summary"]["unchanged"] == 1
    job = Job.objects.get(name="s")
    assert job.env["SECRET"]["value"] == "hunter22"
    job.delete()
    report = do_import(api, json.dumps(masked), "cronfleet")
    assert report["items"][0]["action"] == "create"
    assert any("SECRET" in w for w in report["items"][0]["warnings"])
    assert Job.objects.get(name="s").env == {} and Job.objects.get(name="s").notify_webhooks == []


def test_dependencies_in_the_file_in_any_order_and_cycles_refused(api):
    jobs = [
        {"name": "c", "payload": {"command": "true"}, "schedule": "manual",
         "depends_on": [{"job": "b"}]},
        {"name": "b", "payload": {"command": "true"}, "schedule": "manual",
         "depends_on": [{"job": "a", "on": "always"}]},
        {"name": "a", "payload": {"command": "true"}, "schedule": "@daily"},
        {"name": "x", "payload": {"command": "true"}, "schedule": "manual",
         "depends_on": [{"job": "y"}]},
        {"name": "y", "payload": {"command": "true"}, "schedule": "manual",
         "depends_on": [{"job": "x"}]},
    ]  # fmt: skip
    report = do_import(api, json.dumps({"cronfleet": 1, "jobs": jobs}), "cronfleet")
    assert [i["action"] for i in report["items"]] == ["create"] * 3 + ["refused"] * 2
    assert "cycle" in report["items"][3]["errors"]["depends_on"][0]
    c = Job.objects.get(name="c")
    assert list(c.dependencies.values_list("upstream__name", flat=True)) == ["b"]


def test_cronfleet_lines_are_the_items_lines(api):
    text = "cronfleet: 1\njobs:\n- name: a\n  payload: {command: 'true'}\n  schedule: manual\n" \
           "- name: b\n  kind: nope\n  payload: {}\n  schedule: manual\n"  # fmt: skip
    report = do_import(api, text, "cronfleet", dry_run=True)
    assert [(i["line"], i["action"]) for i in report["items"]] == [(3, "create"), (6, "refused")]
    assert "kind" in report["items"][1]["errors"]


# --- hostile input ----------------------------------------------------------------------


def test_content_too_large_is_refused_naming_the_field(api, settings):
    settings.PORTING_MAX_CONTENT_BYTES = 1000
    response = api.post(IMPORT, {"format": "crontab", "content": "#" * 1001}, format="json")
    assert (
        response.status_code == 400 and "PORTING_MAX_CONTENT_BYTES" in response.json()["content"][0]
    )
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    huge = api.post(IMPORT, {"format": "crontab", "content": "#" * 5000}, format="json")
    assert huge.status_code == 413


def test_too_many_items(api, settings):
    settings.PORTING_MAX_ITEMS = 10
    response = api.post(IMPORT, {"format": "crontab", "content": "* * * * * true\n" * 11},
                        format="json")  # fmt: skip
    assert response.status_code == 400 and "PORTING_MAX_ITEMS" in response.json()["content"][0]


@pytest.mark.parametrize(
    ("fmt", "content", "says"),
    [
        ("cronfleet", "!!python/object/apply:os.system ['touch /tmp/pwned']", "not valid YAML"),
        ("kubernetes", "a: !!python/name:os.system\n", "not valid YAML"),
        ("cronfleet", "- just\n- a list\n", "not a cronfleet document"),
        ("cronfleet", "cronfleet: 1\njobs: 5\n", '"jobs" must be a list'),
        ("kubernetes", "[" * 5000 + "]" * 5000, "levels deep"),
        ("celery", "[1, 2]", "beat_schedule"),
        ("kubernetes", "a: [unclosed", "not valid YAML"),
    ],
)
def test_files_that_are_not_what_they_say_are_a_400(api, fmt, content, says):
    before = rows()
    response = api.post(IMPORT, {"format": fmt, "content": content}, format="json")
    assert response.status_code == 400, response.content
    assert says in response.json()["content"][0]
    assert rows() == before


def test_a_billion_laughs_is_refused_at_once(api):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 10):
        prev, name = chr(96 + index), chr(97 + index)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    response = api.post(IMPORT, {"format": "kubernetes", "content": "\n".join(lines)},
                        format="json")  # fmt: skip
    assert response.status_code == 400
    assert "aliases are expanded" in response.json()["content"][0]


def test_control_characters_in_names_are_refused_by_the_job_rules(api):
    document = {"cronfleet": 1, "jobs": [
        {"name": "evil\r\nBcc: x@example.com", "payload": {"command": "true"},
         "schedule": "manual"},
        {"name": "fine", "payload": {"command": "true"}, "schedule": "manual"},
    ]}  # fmt: skip
    report = do_import(api, json.dumps(document), "cronfleet")
    assert [i["action"] for i in report["items"]] == ["refused", "create"]
    assert "control characters" in report["items"][0]["errors"]["name"][0]
    nul = api.post(IMPORT, {"format": "crontab", "content": "* * * * * echo \x00"}, format="json")
    assert nul.status_code == 400


def test_unauthenticated_is_401():
    from rest_framework.test import APIClient

    assert APIClient().get(EXPORT).status_code == 401
    assert APIClient().post(IMPORT, {}, format="json").status_code == 401
