"""Secret env values: ciphertext in the database (the raw column read), write-only in the
API and the admin, never in a URL, at least 4 characters, re-encrypted under a new key;
the worker still hands the clear value to the job's child (the stack test)."""

from __future__ import annotations

import hashlib
import importlib
import json

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from scheduler_app import encryption
from scheduler_app.models import Job, JobTemplate
from tests.helpers import make_job, manual_job, run_now, wait_runs
from tests.test_validation import as_form

SECRET = "hunter2-very-secret"
MASKED = {"value": "***", "secret": True}
ENV = {"TOKEN": {"value": SECRET, "secret": True}, "MODE": "full"}


def raw(table: str, column: str, pk: int) -> str:
    """The column as the database holds it, past every Django field."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else json.dumps(value)


def raw_env(job_id: int) -> dict:
    return json.loads(raw("scheduler_app_job", "env", job_id))


def test_a_secret_is_ciphertext_in_the_database_and_clear_in_the_job(api):
    body = {"name": "j", "payload": {"command": "true"}, "schedule": "manual", "env": ENV}
    job = api.post("/api/v1/jobs/", body, format="json").json()
    stored = raw_env(job["id"])
    assert SECRET not in json.dumps(stored)
    assert stored["MODE"] == "full" and set(stored["TOKEN"]) == {"secret", "encrypted"}
    assert encryption.decrypt(stored["TOKEN"]["encrypted"]) == SECRET
    assert Job.objects.get(id=job["id"]).env == ENV  # what the worker reads
    assert job["env"] == {"TOKEN": MASKED, "MODE": "full"}
    assert SECRET not in json.dumps(api.get(f"/api/v1/jobs/{job['id']}/").json())
    assert SECRET not in json.dumps(api.get("/api/v1/jobs/").json())


def test_a_templates_secret_is_encrypted_and_write_only(api):
    body = {"name": "t", "defaults": {"env": ENV, "schedule": "manual"}}
    template = api.post("/api/v1/templates/", body, format="json").json()
    assert template["defaults"] == {"env": {"TOKEN": MASKED, "MODE": "full"}, "schedule": "manual"}
    assert SECRET not in raw("scheduler_app_jobtemplate", "defaults", template["id"])
    # Sent back as shown, the secret is kept; then a job made from it has the clear value.
    shown = api.get(f"/api/v1/templates/{template['id']}/").json()
    api.put(f"/api/v1/templates/{template['id']}/", {**shown, "description": "d"}, format="json")
    assert JobTemplate.objects.get(id=template["id"]).defaults["env"] == ENV
    made = api.post(f"/api/v1/templates/{template['id']}/instantiate/",
                    {"name": "from t", "payload": {"command": "true"}}, format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["env"]["TOKEN"] == MASKED
    assert Job.objects.get(id=made.json()["id"]).env == ENV
    assert SECRET not in json.dumps(raw_env(made.json()["id"]))


@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/templates/"])
def test_a_secret_shorter_than_4_characters_is_refused(api, path):
    env = {"PIN": {"value": "abc", "secret": True}}
    job = {"name": "j", "payload": {"command": "true"}, "schedule": "manual", "env": env}
    body = job if path.endswith("jobs/") else {"name": "t", "defaults": {"env": env}}
    response = api.post(path, body, format="json")
    assert response.status_code == 400
    message = "PIN: a secret must be at least 4 characters"
    errors = response.json()
    assert message in (errors["env"] if "env" in errors else errors["defaults"]["env"])[0]


def test_a_stored_value_that_is_not_a_secret_form_cannot_be_put_in_a_template(api):
    env = {"X": {"secret": True, "encrypted": "not a token"}}
    response = api.post("/api/v1/templates/", {"name": "t", "defaults": {"env": env}},
                        format="json")  # fmt: skip
    assert response.status_code == 400


def test_the_admin_job_form_never_shows_a_secret_and_keeps_it(admin_client, owner):
    job = make_job(owner, name="nightly", env=ENV)
    url = f"/admin/scheduler_app/job/{job.id}/change/"
    page = admin_client.get(url).content.decode()
    assert SECRET not in page and "***" in page
    form = as_form({"name": "nightly", "kind": "command", "payload": {"command": "true"},
                    "schedule": "manual", "timezone": "UTC",
                    "env": {"TOKEN": MASKED, "MODE": "fast"}}, owner.id)  # fmt: skip
    assert admin_client.post(url, form).status_code == 302
    job.refresh_from_db()
    assert job.env == {"TOKEN": {"value": SECRET, "secret": True}, "MODE": "fast"}
    # Shown again after an error, the form masks what was typed too.
    form["env"] = json.dumps({"TOKEN": {"value": "typed-secret", "secret": True}})
    form["timeout"] = "-5"
    again = admin_client.post(url, form)
    assert again.status_code == 200 and "typed-secret" not in again.content.decode()


def test_the_admin_template_form_never_shows_a_secret(admin_client, admin_user):
    template = JobTemplate.objects.create(owner=admin_user, name="t", defaults={"env": ENV})
    url = f"/admin/scheduler_app/jobtemplate/{template.id}/change/"
    assert SECRET not in admin_client.get(url).content.decode()
    defaults = {"env": {"TOKEN": MASKED, "MODE": "full"}, "timeout": 5}
    form = {
        "owner": admin_user.id,
        "name": "t",
        "description": "",
        "defaults": json.dumps(defaults),
    }
    assert admin_client.post(url, form).status_code == 302
    template.refresh_from_db()
    assert template.defaults == {"env": ENV, "timeout": 5}
    short = {**form, "defaults": json.dumps({"env": {"P": {"value": "ab", "secret": True}}})}
    assert "at least 4 characters" in admin_client.post(url, short).content.decode()


def test_create_from_template_puts_no_secret_in_a_url(admin_client, admin_user):
    template = JobTemplate.objects.create(owner=admin_user, name="t", defaults={
        "env": ENV, "payload": {"command": "true"}, "schedule": "manual"})  # fmt: skip
    action = {"action": "new_job", "_selected_action": [template.id]}
    response = admin_client.post("/admin/scheduler_app/jobtemplate/", action)
    location = response["Location"]
    assert SECRET not in location and "env" not in location
    page = admin_client.get(location).content.decode()
    assert SECRET not in page and "***" in page
    # Saved as shown (*** for the secret), the job gets the template's secret.
    form = as_form({"name": "t job", "kind": "command", "payload": {"command": "true"},
                    "schedule": "manual", "timezone": "UTC",
                    "env": {"TOKEN": MASKED, "MODE": "full"}}, admin_user.id)  # fmt: skip
    form["from_template"] = template.id
    assert admin_client.post("/admin/scheduler_app/job/add/", form).status_code == 302
    assert Job.objects.get(name="t job").env == ENV


def test_rotation_re_encrypts_every_secret_under_the_new_key(settings, owner, admin_user):
    job = make_job(owner, env=ENV)
    template = JobTemplate.objects.create(owner=owner, name="t", defaults={"env": ENV})
    old = settings.SECRET_ENCRYPTION_KEY
    new = Fernet.generate_key().decode()
    settings.SECRET_ENCRYPTION_KEY = [new, *old]
    call_command("rotate_secret_key")
    settings.SECRET_ENCRYPTION_KEY = [new]  # the old key dropped
    assert Job.objects.get(id=job.id).env == ENV
    assert JobTemplate.objects.get(id=template.id).defaults == {"env": ENV}
    assert Fernet(new.encode()).decrypt(raw_env(job.id)["TOKEN"]["encrypted"].encode())


def test_a_secret_no_key_opens_is_a_clear_error(settings, owner):
    job = make_job(owner, env=ENV)
    settings.SECRET_ENCRYPTION_KEY = [Fernet.generate_key().decode()]
    with pytest.raises(encryption.SecretUnreadable, match="rotate_secret_key"):
        Job.objects.get(id=job.id)


def test_the_migration_encrypts_the_secrets_stored_in_clear(owner):
    job = make_job(owner)
    with connection.cursor() as cursor:  # as a job saved before this version holds it
        cursor.execute("UPDATE scheduler_app_job SET env = %s WHERE id = %s",
                       [json.dumps(ENV), job.id])  # fmt: skip
    assert raw_env(job.id) == ENV
    assert Job.objects.get(id=job.id).env == ENV  # readable meanwhile
    migration = importlib.import_module("scheduler_app.migrations.0016_audit_log_secrets")
    migration.encrypt_secrets(apps, None)
    assert SECRET not in json.dumps(raw_env(job.id))
    assert Job.objects.get(id=job.id).env == ENV


def test_the_key_file_is_made_once_and_private(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.SECRET_ENCRYPTION_KEY = []
    settings.DEBUG = True
    keys = encryption.configured_keys()
    path = tmp_path / encryption.KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert encryption.configured_keys() == keys
    Fernet(keys[0].encode())  # a valid key
    settings.DEBUG = False
    settings.VAR_DIR = tmp_path / "elsewhere"
    with pytest.raises(encryption.ImproperlyConfigured, match="SECRET_ENCRYPTION_KEY"):
        encryption.configured_keys()


@pytest.mark.stack
def test_the_child_gets_the_clear_value_and_its_output_is_masked(live, api):
    """The child prints the secret's digest (which proves it had the clear value) and
    the secret itself (which the output masks)."""
    command = 'printf %s "$TOKEN" | sha256sum | cut -c1-64; echo "token: $TOKEN"'
    job = manual_job(api, "secret", command, env=ENV)
    assert SECRET not in json.dumps(raw_env(job["id"]))
    run_now(api, job)
    [run] = wait_runs(job["id"], 1, status="succeeded")
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert run.output.split() == [digest, "token:", "***"]


def test_a_malformed_or_missing_key_is_found_at_start(settings, tmp_path):
    settings.SECRET_ENCRYPTION_KEY = ["not-a-fernet-key"]
    assert "scheduler_app.E010" in [e.id for e in run_checks()]
    settings.SECRET_ENCRYPTION_KEY = []
    settings.DEBUG = False
    settings.VAR_DIR = tmp_path
    assert "scheduler_app.E010" in [e.id for e in run_checks()]
