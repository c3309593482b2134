"""Files and the software catalogue through the API: upload, limits, digests, names,
who may use what, and the payloads of ``file`` and ``software`` jobs."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.core.files.uploadhandler import StopUpload
from rest_framework.test import APIClient

from scheduler_app import checks, deployment
from scheduler_app.api.deploy import LimitedHashingUpload
from scheduler_app.models import Job, Software, StoredFile
from tests.helpers import client_for, create_job, files_stored_in, grant_run_code, make_job
from tests.test_validation import as_form

FILES = "/api/v1/files/"
SOFTWARE = "/api/v1/software/"


@pytest.fixture(autouse=True)
def file_storage(settings, tmp_path):
    """Uploads go to a directory of the test's own; jobs may deploy under ``deploy``."""
    files = files_stored_in(settings, tmp_path / "files")
    (tmp_path / "deploy").mkdir()
    settings.SCHEDULER_ALLOWED_DIRS = [str(tmp_path / "deploy")]
    return files


def upload(client: APIClient, content: bytes, filename: str = "app.conf", **fields: str):
    handle = io.BytesIO(content)
    handle.name = filename
    return client.post(FILES, {"file": handle, **fields}, format="multipart")


def said(messages) -> str:
    return " ".join(str(message) for message in messages)


def file_job(api: APIClient, tmp_path: Path, file_ids: list[int], **payload):
    body = {"files": file_ids, "target_path": str(tmp_path / "deploy" / "conf"), **payload}
    return api.post(
        "/api/v1/jobs/",
        {"name": "deploy", "kind": "file", "schedule": "manual", "payload": body},
        format="json",
    )


def test_an_upload_is_stored_with_its_size_and_sha256(api, file_storage):
    content = b"listen 8080\n" * 1000
    response = upload(api, content, "nginx.conf")
    assert response.status_code == 201, response.data
    body = response.data
    assert body["name"] == "nginx.conf"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["owner"] == "alice"
    stored = StoredFile.objects.get(pk=body["id"])
    # Kept under a name of the scheduler's own, byte-identical.
    assert "nginx" not in stored.storage_name
    assert (file_storage / stored.storage_name).read_bytes() == content
    assert api.get(f"{FILES}{body['id']}/").data["sha256"] == body["sha256"]


def test_an_upload_over_the_limit_is_refused_and_not_stored(api, settings, file_storage):
    settings.SCHEDULER_FILE_MAX_BYTES = 1000
    response = upload(api, b"x" * 1001)
    assert response.status_code == 413
    assert "SCHEDULER_FILE_MAX_BYTES" in said(response.data["file"])
    assert not StoredFile.objects.exists()
    assert not list(file_storage.rglob("*")) or not any(
        p.is_file() for p in file_storage.rglob("*")
    )
    assert upload(api, b"x" * 1000).status_code == 201


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(api, settings):
    settings.SCHEDULER_FILE_MAX_BYTES = 1000
    response = api.post(FILES, b"x" * 200_000, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 413


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", ".", "a\nb", "x" * 256])
def test_a_name_that_is_not_a_plain_file_name_is_refused(api, name):
    response = upload(api, b"data", name=name)
    assert response.status_code == 400
    assert "name" in response.data
    assert not StoredFile.objects.exists()


def test_the_uploaded_path_is_not_kept(api):
    response = upload(api, b"data", filename="../../../etc/cron.d/evil")
    assert response.status_code == 201
    assert response.data["name"] == "evil"


def test_one_file_and_only_as_file(api):
    assert api.post(FILES, {"name": "x"}, format="multipart").status_code == 400


def test_others_files_are_missing_to_them(api, outsider_api, team, teammate_api):
    mine = upload(api, b"mine").data
    shared = upload(api, b"shared", team=str(team.pk)).data
    assert outsider_api.get(f"{FILES}{mine['id']}/").status_code == 404
    assert outsider_api.delete(f"{FILES}{mine['id']}/").status_code == 404
    assert (
        outsider_api.get(FILES).data["results"] == []
        if isinstance(outsider_api.get(FILES).data, dict)
        else outsider_api.get(FILES).data == []
    )
    seen = [f["id"] for f in _rows(teammate_api.get(FILES).data)]
    assert seen == [shared["id"]]


def _rows(data):
    return data["results"] if isinstance(data, dict) else data


def test_a_team_the_uploader_is_not_in_is_refused(api, outsider_api, team):
    assert upload(outsider_api, b"x", team=str(team.pk)).status_code == 400


def test_a_file_job_is_validated(api, tmp_path):
    file_id = upload(api, b"data").data["id"]
    response = file_job(api, tmp_path, [file_id], mode="0640")
    assert response.status_code == 201, response.data
    payload = response.data["payload"]
    assert payload == {
        "files": [file_id],
        "target_path": str(tmp_path / "deploy" / "conf"),
        "create_path": True,
        "mode": "0640",
        "overwrite": True,
    }


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"mode": "4755"}, "setuid"),
        ({"mode": "0o644"}, "'mode'"),
        ({"mode": 644}, "'mode'"),
        ({"target_path": "relative/dir"}, "'target_path'"),
        ({"target_path": "/etc"}, "SCHEDULER_ALLOWED_DIRS"),
        ({"target_path": "{deploy}/../../etc"}, "SCHEDULER_ALLOWED_DIRS"),
        ({"files": []}, "'files'"),
        ({"files": ["1"]}, "'files'"),
        ({"overwrite": "yes"}, "'overwrite'"),
    ],
)
def test_a_bad_file_payload_is_refused_naming_the_field(api, tmp_path, change, words):
    file_id = upload(api, b"data").data["id"]
    if isinstance(change.get("target_path"), str):
        change["target_path"] = change["target_path"].format(deploy=tmp_path / "deploy")
    response = file_job(api, tmp_path, [file_id], **change)
    assert response.status_code == 400
    assert words in said(response.data["payload"])


def test_no_allowed_dirs_refuses_every_target(api, tmp_path, settings):
    settings.SCHEDULER_ALLOWED_DIRS = []
    file_id = upload(api, b"data").data["id"]
    response = file_job(api, tmp_path, [file_id])
    assert response.status_code == 400
    assert "SCHEDULER_ALLOWED_DIRS" in said(response.data["payload"])


def test_another_users_file_is_refused_in_a_job(api, outsider, tmp_path):
    theirs = upload(client_for(outsider), b"theirs").data["id"]
    response = file_job(api, tmp_path, [theirs])
    assert response.status_code == 400
    assert f"file {theirs} does not exist" in said(response.data["payload"])


def test_a_team_file_may_be_deployed_by_a_member(api, teammate, team, tmp_path):
    shared = upload(api, b"shared", team=str(team.pk)).data["id"]
    coder = client_for(grant_run_code(teammate))
    assert file_job(coder, tmp_path, [shared]).status_code == 201


def test_two_files_of_one_name_are_refused(api, tmp_path):
    first = upload(api, b"one", name="app.conf").data["id"]
    second = upload(api, b"two", name="app.conf").data["id"]
    response = file_job(api, tmp_path, [first, second])
    assert response.status_code == 400
    assert "both named" in said(response.data["payload"])


def test_deploying_files_needs_the_code_right(outsider, tmp_path):
    client = client_for(outsider)
    file_id = upload(client, b"data").data["id"]
    response = file_job(client, tmp_path, [file_id])
    assert response.status_code == 403
    assert "scheduler_app.run_code" in response.data["detail"]


def test_a_file_in_use_cannot_be_deleted(
    api, tmp_path, file_storage, django_capture_on_commit_callbacks
):
    file_id = upload(api, b"data").data["id"]
    job = file_job(api, tmp_path, [file_id]).data
    response = api.delete(f"{FILES}{file_id}/")
    assert response.status_code == 409
    assert "deploy" in response.data["detail"]
    assert api.delete(f"/api/v1/jobs/{job['id']}/").status_code == 204
    storage_name = StoredFile.objects.get(pk=file_id).storage_name
    with django_capture_on_commit_callbacks(execute=True):  # the bytes go at the commit
        assert api.delete(f"{FILES}{file_id}/").status_code == 204
    assert not storages["files"].exists(storage_name)
    assert not os.path.exists(file_storage / storage_name)


# --- the software catalogue -------------------------------------------------------


def software(client: APIClient, **fields):
    body = {"name": "tool", "version": "1.0", "install": "true", "check": "cat v", **fields}
    return client.post(SOFTWARE, body, format="json")


def test_a_catalogue_entry_is_made_and_read(api):
    response = software(api)
    assert response.status_code == 201, response.data
    assert response.data["check"] == "cat v"
    assert api.get(f"{SOFTWARE}{response.data['id']}/").data["version"] == "1.0"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"version": "1 0"}, "version"),
        ({"version": ""}, "version"),
        ({"install": "", "pip": ""}, "install"),
        ({"install": "make", "pip": "requests"}, "install"),
        ({"install": "", "pip": "requests; os_name"}, "pip"),
        ({"check": ""}, "check"),
        ({"check": "echo \x01"}, "check"),
    ],
)
def test_a_bad_catalogue_entry_is_refused_naming_the_field(api, fields, field):
    response = software(api, **fields)
    assert response.status_code == 400
    assert field in response.data


def test_the_catalogue_needs_the_code_right(outsider_api, api):
    assert software(outsider_api).status_code == 403
    entry = software(api).data
    assert outsider_api.get(f"{SOFTWARE}{entry['id']}/").status_code == 404


def test_a_software_job_names_catalogue_entries(api, outsider):
    mine = software(api).data["id"]
    theirs = Software.objects.create(owner=outsider, name="theirs", version="1", check_command="x",
                                      install="true").pk  # fmt: skip

    def job(packages):
        return api.post(
            "/api/v1/jobs/",
            {"name": f"sw-{len(packages)}-{packages[0]}", "kind": "software",
             "schedule": "manual", "payload": {"packages": packages}},
            format="json",
        )  # fmt: skip

    made = job([{"software": mine}, {"name": "tool", "version": "2.0"}])
    assert made.status_code == 201, made.data
    assert made.data["payload"]["packages"] == [
        {"software": mine},
        {"software": mine, "version": "2.0"},
    ]
    refused = job([{"software": theirs}])
    assert refused.status_code == 400
    assert f"software {theirs} does not exist" in said(refused.data["payload"])
    assert "no software named" in said(job([{"name": "theirs", "version": "1"}]).data["payload"])
    assert "'version'" in said(job([{"name": "tool", "version": "1 2"}]).data["payload"])
    assert api.delete(f"{SOFTWARE}{mine}/").status_code == 409


def test_a_job_made_with_files_keeps_working_on_update(api, tmp_path):
    file_id = upload(api, b"data").data["id"]
    job = create_job(
        api, name="d2", kind="file", schedule="manual",
        payload={"files": [file_id], "target_path": str(tmp_path / "deploy")},
    )  # fmt: skip
    response = api.patch(f"/api/v1/jobs/{job['id']}/", {"description": "x"}, format="json")
    assert response.status_code == 200, response.data


def test_the_admin_refuses_another_users_file_too(world, tmp_path):
    theirs = StoredFile.objects.create(owner=world.users["outsider"], name="x", size=1,
                                       sha256="0" * 64, storage_name="deploy/x")  # fmt: skip
    job = {"name": "f", "kind": "file", "schedule": "manual", "timezone": "UTC",
           "payload": {"files": [theirs.pk], "target_path": str(tmp_path / "deploy")}}  # fmt: skip
    form = {k: v for k, v in as_form(job, 0).items() if k != "owner"}
    response = world.browser("coder").post("/admin/scheduler_app/job/add/", form)
    assert response.status_code == 200
    assert f"file {theirs.pk} does not exist" in str(response.context["adminform"].form.errors)
    assert not Job.objects.filter(name="f").exists()


def test_a_team_editor_changes_the_catalogue_only_with_the_code_right(api, team, teammate):
    entry = software(api, team=team.pk).data
    editor = client_for(teammate)
    path = f"{SOFTWARE}{entry['id']}/"
    assert editor.get(path).status_code == 200
    refused = editor.patch(path, {"version": "3.0"}, format="json")
    assert refused.status_code == 403
    assert "scheduler_app.run_code" in refused.data["detail"]
    assert editor.delete(path).status_code == 403
    grant_run_code(teammate)
    coder = editor  # the same token: its user now has the right
    assert coder.patch(path, {"version": "3.0"}, format="json").data["version"] == "3.0"
    # Switching to pip keeps one way to install: the install command must go.
    both = coder.patch(path, {"pip": "requests"}, format="json")
    assert both.status_code == 400 and "install" in both.data
    assert coder.patch(path, {"pip": "requests", "install": ""}, format="json").status_code == 200


def test_uploads_and_catalogue_changes_are_audited(api):
    file_id = upload(api, b"data").data["id"]
    entry = software(api).data
    events = {(e["action"], e["object_type"], e["object_id"])
              for e in api.get("/api/v1/audit/").data["results"]}  # fmt: skip
    assert ("create", "storedfile", file_id) in events
    assert ("create", "software", entry["id"]) in events


def test_the_upload_stops_as_soon_as_the_limit_is_passed(rf):
    """Counted chunk by chunk as the body is read: never more than the limit is kept."""
    handler = LimitedHashingUpload(rf.post("/"), limit=100_000)
    handler.new_file("file", "big.bin", "application/octet-stream", None)
    chunk = b"x" * 40_000
    handler.receive_data_chunk(chunk, 0)
    handler.receive_data_chunk(chunk, 40_000)
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(chunk, 80_000)
    assert handler.too_large
    handler.file.seek(0, os.SEEK_END)
    assert handler.file.tell() == 80_000
    handler.file.close()


def test_a_software_dir_outside_the_allowed_dirs_is_reported_at_start(settings, tmp_path):
    settings.SCHEDULER_SOFTWARE_DIR = str(tmp_path / "deploy" / "software")
    assert checks.software_dir_is_allowed(None) == []
    settings.SCHEDULER_SOFTWARE_DIR = "/opt/elsewhere"
    (warning,) = checks.software_dir_is_allowed(None)
    assert warning.id == "scheduler_app.W020" and "SCHEDULER_ALLOWED_DIRS" in warning.msg


def test_a_refused_delete_names_only_the_jobs_the_caller_may_view(owner, outsider):
    """Who else uses a file or package is not the caller's to read: those are counted."""
    mine = make_job(outsider, name="bobs-deploy", kind="file", payload={"files": [1]})
    theirs = make_job(owner, name="alices-secret-deploy", kind="file", payload={"files": [1]})
    told = deployment.in_use_refusal(outsider, "file 1", [theirs, mine])
    assert told == "file 1 is used by jobs: bobs-deploy, 1 of others'; change them first."
    assert "alices" not in told


def test_a_team_that_is_not_an_ascii_number_is_a_400_not_a_500(api, file_storage):
    response = upload(api, b"data", team="²")
    assert response.status_code == 400 and "team" in response.data
