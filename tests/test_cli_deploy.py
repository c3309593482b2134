"""``schedule files`` and ``schedule software`` against a real HTTP server (pytest-django's
``live_server``): uploads as multipart with their digest, refusals with the API's reason,
the catalogue's field errors, exit codes."""

from __future__ import annotations

import hashlib
import json
import re

import pexpect
import pytest
import yaml
from rest_framework.authtoken.models import Token

from scheduler_app.cli.files import PROGRESS_FROM
from scheduler_app.models import Software, StoredFile
from tests.cli_runner import SCHEDULE, Schedule
from tests.helpers import files_stored_in, make_job
from tests.test_cli import editor_script

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture(autouse=True)
def file_storage(settings, tmp_path):
    return files_stored_in(settings, tmp_path / "files")


@pytest.fixture
def schedule(api, owner, live_server, tmp_path) -> Schedule:
    """The owner's ``schedule`` (their token, from the ``api`` fixture); they have the
    code right."""
    return Schedule(live_server.url, Token.objects.get(user=owner).key, tmp_path)


@pytest.fixture
def outsider_schedule(outsider_api, outsider, live_server, tmp_path) -> Schedule:
    return Schedule(live_server.url, Token.objects.get(user=outsider).key, tmp_path)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def file_job(owner, file_id: int, name: str = "deploy-conf"):
    payload = {"files": [file_id], "target_path": "/srv/conf"}
    return make_job(owner, name=name, kind="file", payload=payload)


# --- files ------------------------------------------------------------------------


def test_an_upload_shows_its_id_size_and_sha256_and_is_stored_as_sent(
    schedule, tmp_path, file_storage, team
):
    content = b"listen 8080;\n" * 500
    source = tmp_path / "nginx.conf"
    source.write_bytes(content)
    made = json.loads(ok(schedule("files", "upload", str(source), "-o", "json")))
    assert (made["name"], made["size"], made["sha256"], made["owner"], made["team"]) == (
        "nginx.conf", len(content), hashlib.sha256(content).hexdigest(), "alice", None)  # fmt: skip
    stored = StoredFile.objects.get(pk=made["id"])
    assert (file_storage / stored.storage_name).read_bytes() == content

    shown = schedule("files", "upload", str(source), "--name", "site.conf", "--team", "ops")
    table = ok(shown)
    second = StoredFile.objects.exclude(pk=made["id"]).get()
    assert (second.name, second.team_id) == ("site.conf", team.pk)
    assert re.search(rf"^id +{second.pk} *$", table, re.MULTILINE)
    assert "6.3 KiB (6500 bytes)" in table and hashlib.sha256(content).hexdigest() in table
    assert f'"files": [{second.pk}]' in shown.stderr


def test_the_list_shows_every_file_with_a_short_digest(schedule, tmp_path):
    for index in range(3):
        (tmp_path / f"f{index}").write_bytes(b"%d" % index)
        ok(schedule("files", "upload", str(tmp_path / f"f{index}")))
    rows = json.loads(ok(schedule("files", "list", "-o", "json")))
    assert sorted(row["name"] for row in rows) == ["f0", "f1", "f2"]
    assert yaml.safe_load(ok(schedule("files", "list", "-o", "yaml"))) == rows
    table = ok(schedule("files", "list"))
    digest = hashlib.sha256(b"1").hexdigest()
    assert digest[:12] in table and digest not in table and "SHA256" in table


def test_a_file_in_use_is_not_deleted_and_the_reason_is_shown(schedule, owner, tmp_path):
    (tmp_path / "app.conf").write_bytes(b"x")
    made = json.loads(ok(schedule("files", "upload", str(tmp_path / "app.conf"), "-o", "json")))
    job = file_job(owner, made["id"])
    refused = schedule("files", "delete", str(made["id"]))
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"file {made['id']} is used by jobs: deploy-conf; change them first." in refused.stderr
    assert StoredFile.objects.filter(pk=made["id"]).exists()
    job.delete()
    deleted = schedule("files", "delete", "app.conf", "-o", "json")  # by name
    assert json.loads(ok(deleted)) == {"deleted": made["id"]}
    assert schedule("files", "delete", str(made["id"])).returncode == 3


def test_upload_refusals_and_their_exit_codes(schedule, outsider_schedule, tmp_path, settings):
    assert schedule("files", "upload", str(tmp_path / "missing")).returncode == 2
    settings.SCHEDULER_FILE_MAX_BYTES = 10
    (tmp_path / "big").write_bytes(b"x" * 11)
    too_big = schedule("files", "upload", str(tmp_path / "big"))
    assert too_big.returncode == 1
    assert too_big.stderr == "file: 'file' is larger than 10 bytes (SCHEDULER_FILE_MAX_BYTES).\n"
    (tmp_path / "small").write_bytes(b"x")
    not_theirs = outsider_schedule("files", "upload", str(tmp_path / "small"), "--team", "ops")
    assert not_theirs.returncode == 3 and "team" in not_theirs.stderr
    assert not StoredFile.objects.exists()


def test_a_big_upload_shows_its_progress_on_a_terminal(schedule, tmp_path):
    content = bytes(range(256)) * (PROGRESS_FROM // 256 + 1)
    (tmp_path / "big.bin").write_bytes(content)
    terminal = pexpect.spawn(SCHEDULE, ["files", "upload", str(tmp_path / "big.bin")],
                             env=schedule.environment(), cwd=str(tmp_path),
                             encoding="utf-8", timeout=60)  # fmt: skip
    terminal.expect("MB")  # the bar's bytes sent of the total
    terminal.expect(hashlib.sha256(content).hexdigest())
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0
    assert StoredFile.objects.get().size == len(content)


# --- the software catalogue -------------------------------------------------------

HTTPIE = ["--version", "3.2.2", "--pip", "httpie", "--check", "http --version"]


def test_create_list_show_and_edit_an_entry(schedule, owner, team):
    made = json.loads(ok(schedule("software", "create", "httpie", *HTTPIE, "-o", "json")))
    assert (made["version"], made["pip"], made["check"], made["install"]) == (
        "3.2.2", "httpie", "http --version", "")  # fmt: skip
    said = schedule("software", "create", "nginx", "--version", "1.24", "--install",
                    "apt-get install -y nginx", "--check", "nginx -v", "--team", "ops")  # fmt: skip
    assert "Created software" in ok(said) + said.stderr and "by its install command" in said.stderr
    assert Software.objects.get(name="nginx").team_id == team.pk

    rows = json.loads(ok(schedule("software", "list", "-o", "json")))
    assert [row["name"] for row in rows] == ["httpie", "nginx"]
    table = ok(schedule("software", "list"))
    assert "pip httpie" in table and "apt-get install -y nginx" in table and "VERSION" in table
    assert json.loads(ok(schedule("software", "show", "httpie", "-o", "json"))) == made
    assert "http --version" in ok(schedule("software", "show", str(made["id"])))

    edited = json.loads(ok(schedule("software", "edit", "httpie", "--version", "3.2.4",
                                    "-o", "json")))  # fmt: skip
    assert (edited["version"], edited["pip"]) == ("3.2.4", "httpie")


def test_edit_without_options_opens_the_editor(schedule, tmp_path):
    ok(schedule("software", "create", "httpie", *HTTPIE))
    rewrite = editor_script(tmp_path, 'path.write_text(text.replace("3.2.2", "3.3.0"))\n')
    edited = schedule("software", "edit", "httpie", EDITOR=rewrite)
    assert "Saved version of software" in ok(edited) + edited.stderr
    assert Software.objects.get(name="httpie").version == "3.3.0"
    untouched = schedule("software", "edit", "httpie", EDITOR="true", VISUAL=None)
    assert "No changes" in ok(untouched) + untouched.stderr


def test_the_apis_field_errors_are_shown_as_field_and_message(schedule):
    both = schedule("software", "create", "x", "--version", "1", "--pip", "x",
                    "--install", "make install", "--check", "x --version")  # fmt: skip
    assert both.returncode == 1
    assert "install: give either 'install' (a shell command) or 'pip'" in both.stderr
    bad = schedule("software", "create", "x", "--version", "1 2", "--pip", "no way",
                   "--check", "true")  # fmt: skip
    assert bad.returncode == 1
    assert "version: 'version' must be a version such as 1.2.3" in bad.stderr
    assert "pip: 'pip' must be a project name" in bad.stderr
    assert schedule("software", "create", "x", "--pip", "x").returncode == 2  # usage
    assert not Software.objects.exists()


def test_without_the_code_right_the_catalogue_refuses_with_4(outsider_schedule):
    refused = outsider_schedule("software", "create", "httpie", *HTTPIE)
    assert refused.returncode == 4 and "scheduler_app.run_code" in refused.stderr
    assert outsider_schedule("software", "show", "httpie").returncode == 3


def test_an_entry_a_job_installs_is_not_deleted_and_the_reason_is_shown(schedule, owner):
    made = json.loads(ok(schedule("software", "create", "httpie", *HTTPIE, "-o", "json")))
    job = make_job(owner, name="tools", kind="software",
                   payload={"packages": [{"software": made["id"]}]})  # fmt: skip
    refused = schedule("software", "delete", "httpie", "--yes")
    assert refused.returncode == 1
    assert f"software {made['id']} is used by jobs: tools; change them first." in refused.stderr
    job.delete()
    assert "Deleted software" in schedule("software", "delete", "httpie").stderr
    assert not Software.objects.exists()
    assert schedule("software", "delete", "httpie").returncode == 3
