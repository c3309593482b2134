"""File and software deployment on the real stack: a Celery worker (root, running job
code as SCHEDULER_RUN_AS) puts uploaded files in place and brings catalogue packages
to a version, and a second run changes nothing."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import storages

from scheduler_app import identity
from scheduler_app.models import Run, StoredFile
from tests.helpers import create_job, run_now, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("live")]


@pytest.fixture
def deploy_dir() -> Iterator[Path]:
    """A directory under SCHEDULER_ALLOWED_DIRS that the run-as identity owns."""
    path = Path(settings.SCHEDULER_ALLOWED_DIRS[0]) / f"deploy-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    who = identity.run_as()
    os.chown(path, who.uid, who.gid)
    yield path
    shutil.rmtree(path)


def upload(api, content: bytes, name: str) -> dict:
    handle = io.BytesIO(content)
    handle.name = name
    response = api.post("/api/v1/files/", {"file": handle}, format="multipart")
    assert response.status_code == 201, response.data
    return response.data


def run_job(api, job: dict, count: int) -> Run:
    run_now(api, job)
    runs = wait_runs(job["id"], count, timeout=60, finished_at__isnull=False)
    return runs[-1]


def file_job(api, ids: list[int], target: Path, **payload) -> dict:
    return create_job(
        api, name=f"deploy-{uuid.uuid4().hex[:6]}", kind="file", schedule="manual",
        payload={"files": ids, "target_path": str(target), **payload},
    )  # fmt: skip


def test_files_land_byte_identical_and_a_second_deploy_changes_nothing(api, deploy_dir):
    config = b"listen 8080;\n" + os.urandom(4096)
    script = b"#!/bin/sh\necho hi\n"
    ids = [upload(api, config, "app.conf")["id"], upload(api, script, "hook.sh")["id"]]
    target = deploy_dir / "etc" / "app"  # made on the way: create_path
    job = file_job(api, ids, target, mode="0640")

    first = run_job(api, job, 1)
    assert first.status == "succeeded", (first.error, first.output)
    placed = target / "app.conf"
    assert placed.read_bytes() == config
    assert (target / "hook.sh").read_bytes() == script
    info = placed.stat()
    who = identity.run_as()
    assert (info.st_uid, oct(info.st_mode & 0o7777)) == (who.uid, "0o640")  # written as it
    reports = {r["path"]: r for r in first.result["files"]}
    assert reports[str(placed)] == {
        "file": ids[0], "path": str(placed), "size": len(config),
        "sha256": hashlib.sha256(config).hexdigest(), "created": True, "changed": True,
    }  # fmt: skip
    assert f"created   {placed}" in first.output
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no temporary left

    second = run_job(api, job, 2)
    assert second.status == "succeeded", (second.error, second.output)
    assert [r["changed"] for r in second.result["files"]] == [False, False]
    assert second.result["changed"] == 0
    assert f"unchanged {placed}" in second.output
    again = placed.stat()
    assert (again.st_ino, again.st_mtime_ns) == (info.st_ino, info.st_mtime_ns)


def test_a_changed_file_is_replaced_and_overwrite_false_refuses(api, deploy_dir):
    upload_id = upload(api, b"new content\n", "app.conf")["id"]
    (deploy_dir / "app.conf").write_bytes(b"old content\n")
    keep = file_job(api, [upload_id], deploy_dir, overwrite=False)
    refused = run_job(api, keep, 1)
    assert refused.status == "failed"
    assert "overwrite is false" in refused.error
    assert (deploy_dir / "app.conf").read_bytes() == b"old content\n"

    replace = file_job(api, [upload_id], deploy_dir)
    replaced = run_job(api, replace, 1)
    assert replaced.status == "succeeded", (replaced.error, replaced.output)
    assert replaced.result["files"][0]["changed"] is True
    assert replaced.result["files"][0]["created"] is False
    assert (deploy_dir / "app.conf").read_bytes() == b"new content\n"


def test_a_directory_the_run_may_not_make_fails_the_file_saying_so(api, deploy_dir):
    """create_path where the run's identity cannot write: the run fails with the reason,
    not a traceback, and nothing is made."""
    locked = deploy_dir / "locked"
    locked.mkdir(mode=0o755)  # the test's (root's): the run's identity may not write in it
    upload_id = upload(api, b"x\n", "x.conf")["id"]
    run = run_job(api, file_job(api, [upload_id], locked / "sub"), 1)
    assert run.status == "failed"
    assert f"{locked / 'sub'} cannot be made: Permission denied" in run.error
    assert "Traceback" not in run.output
    assert not (locked / "sub").exists()


def test_a_symlink_at_the_target_or_on_the_way_is_not_followed(api, deploy_dir, tmp_path):
    victim = tmp_path / "victim"  # root's, out of the allowed directories
    victim.write_bytes(b"precious\n")
    upload_id = upload(api, b"attack\n", "app.conf")["id"]
    (deploy_dir / "app.conf").symlink_to(victim)
    at_target = run_job(api, file_job(api, [upload_id], deploy_dir), 1)
    assert at_target.status == "failed"
    assert "symbolic link" in at_target.error

    # A directory that was real when the job was saved, a link when it runs: to elsewhere
    # (the node's own check of SCHEDULER_ALLOWED_DIRS refuses it), or to another allowed
    # directory (the writer, walking the path without following links, refuses it).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o777)
    inside = deploy_dir / "inside"
    inside.mkdir()
    os.chown(inside, identity.run_as().uid, identity.run_as().gid)
    for pointee, words in ((elsewhere, "outside the directories"), (inside, "not followed")):
        (deploy_dir / "sub").mkdir()
        job = file_job(api, [upload_id], deploy_dir / "sub")
        (deploy_dir / "sub").rmdir()
        (deploy_dir / "sub").symlink_to(pointee)
        on_the_way = run_job(api, job, 1)
        assert on_the_way.status == "failed"
        assert words in on_the_way.error
        (deploy_dir / "sub").unlink()
    assert victim.read_bytes() == b"precious\n"
    assert list(elsewhere.iterdir()) == []
    assert list(inside.iterdir()) == []


def test_a_file_changed_in_storage_since_its_upload_is_not_deployed(api, deploy_dir):
    uploaded = upload(api, b"what was uploaded\n", "app.conf")
    stored = StoredFile.objects.get(pk=uploaded["id"])
    with storages["files"].open(stored.storage_name, "wb") as handle:
        handle.write(b"what an attacker wrote\n")
    run = run_job(api, file_job(api, [uploaded["id"]], deploy_dir), 1)
    assert run.status == "failed"
    assert f"not the 18 bytes with {uploaded['sha256']} uploaded" in run.error
    assert not (deploy_dir / "app.conf").exists()


# --- software ---------------------------------------------------------------------


def catalogue(api, deploy_dir: Path, **fields) -> dict:
    version_file = deploy_dir / "tool.version"
    body = {
        "name": f"tool-{uuid.uuid4().hex[:6]}",
        "version": "2.0",
        "install": f'printf "%s\\n" "$SCHEDULER_SOFTWARE_VERSION" > {version_file}',
        "check": f"cat {version_file}",
        **fields,
    }
    response = api.post("/api/v1/software/", body, format="json")
    assert response.status_code == 201, response.data
    return response.data


def software_job(api, packages: list[dict], **fields) -> dict:
    return create_job(
        api, name=f"sw-{uuid.uuid4().hex[:6]}", kind="software", schedule="manual",
        payload={"packages": packages}, **fields,
    )  # fmt: skip


def test_a_package_moves_to_the_wanted_version_then_is_left_alone(api, deploy_dir):
    entry = catalogue(api, deploy_dir)
    version_file = deploy_dir / "tool.version"
    version_file.write_text("1.0\n")
    os.chown(version_file, identity.run_as().uid, identity.run_as().gid)
    job = software_job(api, [{"software": entry["id"]}])

    first = run_job(api, job, 1)
    assert first.status == "succeeded", (first.error, first.output)
    (report,) = first.result["packages"]
    assert (report["before"], report["after"], report["action"]) == ("1.0", "2.0", "installed")
    assert version_file.read_text() == "2.0\n"
    assert f"{entry['name']}: 1.0 -> 2.0" in first.output
    mtime = version_file.stat().st_mtime_ns

    second = run_job(api, job, 2)
    assert second.status == "succeeded", (second.error, second.output)
    (report,) = second.result["packages"]
    assert (report["before"], report["after"], report["action"]) == ("2.0", "2.0", "unchanged")
    assert version_file.stat().st_mtime_ns == mtime

    # Another version than the catalogue's, asked by name.
    older = run_job(api, software_job(api, [{"name": entry["name"], "version": "1.5"}]), 1)
    assert older.status == "succeeded", (older.error, older.output)
    assert older.result["packages"][0]["after"] == "1.5"


def test_a_failing_install_fails_the_run_with_its_output(api, deploy_dir):
    broken = catalogue(api, deploy_dir, install="echo 'E: no space left on device' >&2; exit 3")
    after = catalogue(api, deploy_dir)
    run = run_job(api, software_job(api, [{"software": broken["id"]},
                                          {"software": after["id"]}]), 1)  # fmt: skip
    assert run.status == "failed"
    assert "no space left on device" in run.error
    assert "exited with code 3" in run.error
    assert "no space left on device" in run.output
    # stop_on_failure (the default): the second package was not touched.
    assert [p["action"] for p in run.result["packages"]] == ["failed"]
    assert not (deploy_dir / "tool.version").exists()


def test_an_install_that_does_not_reach_the_version_fails(api, deploy_dir):
    entry = catalogue(api, deploy_dir, install="true", check="echo 0.9")
    run = run_job(api, software_job(api, [{"software": entry["id"]}]), 1)
    assert run.status == "failed"
    assert "check prints '0.9', not '2.0'" in run.error


def wheel(directory: Path, name: str, version: str) -> None:
    """A minimal pure-Python wheel of ``name`` at ``version``, built by hand (no network,
    no build backend): a module, its METADATA, WHEEL and RECORD."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(directory / f"{module}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def test_a_pip_package_is_installed_from_a_local_wheel_then_upgraded(api, deploy_dir):
    name = f"cronfleet-probe-{uuid.uuid4().hex[:6]}"
    wheels = deploy_dir / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        wheel(wheels, name, version)
    check = (
        'PYTHONPATH="$SCHEDULER_SOFTWARE_DIR" /usr/bin/python3 -c '
        f"'import importlib.metadata as m; print(m.version(\"{name}\"))'"
    )
    entry = catalogue(api, deploy_dir, name=name, version="1.0", install="", pip=name,
                      check=check)  # fmt: skip
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    first = run_job(api, software_job(api, [{"software": entry["id"]}], env=offline), 1)
    assert first.status == "succeeded", (first.error, first.output)
    assert first.result["packages"][0]["before"] is None
    assert first.result["packages"][0]["after"] == "1.0"

    upgrade = software_job(api, [{"software": entry["id"], "version": "2.0"}], env=offline)
    moved = run_job(api, upgrade, 1)
    assert moved.status == "succeeded", (moved.error, moved.output)
    report = moved.result["packages"][0]
    assert (report["before"], report["after"], report["action"]) == ("1.0", "2.0", "installed")
    again = run_job(api, upgrade, 2)
    assert again.result["packages"][0]["action"] == "unchanged"
    installed = Path(settings.SCHEDULER_SOFTWARE_DIR) / name.replace("-", "_")
    assert (installed / "__init__.py").read_text() == "VERSION = '2.0'\n"
    assert installed.stat().st_uid == identity.run_as().uid
    # The replaced version's metadata is gone: else which version a check reads is luck.
    metadata = Path(settings.SCHEDULER_SOFTWARE_DIR).glob(name.replace("-", "_") + "-*.dist-info")
    assert [path.name for path in metadata] == [f"{name.replace('-', '_')}-2.0.dist-info"]
    for leftover in Path(settings.SCHEDULER_SOFTWARE_DIR).glob(name.replace("-", "_") + "*"):
        shutil.rmtree(leftover)
