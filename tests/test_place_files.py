"""The ``file`` kind's child program (workers/executors/place_files.py), called in-process:
atomic writes checked against their digest, no link followed, nothing rewritten needlessly.
The real stack's tests (test_deploy_live.py) run it as the run-as identity."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from workers.executors import files, pip_install, place_files


def plan(tmp_path: Path, target: Path, contents: dict[str, bytes], **options) -> dict:
    staged = tmp_path / "staged"
    staged.mkdir(exist_ok=True)
    items = []
    for index, (name, content) in enumerate(contents.items()):
        (staged / name).write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        items.append({"id": index + 1, "name": name, "staged": str(staged / name),
                      "sha256": digest, "size": len(content)})  # fmt: skip
    return {"target_path": str(target), "create_path": True, "mode": "0644", "overwrite": True,
            "files": items, "result": str(tmp_path / "result.json"), **options}  # fmt: skip


def test_files_are_written_with_their_mode_and_reported(tmp_path, capsys):
    target = tmp_path / "a" / "b"
    reports = place_files.deploy(plan(tmp_path, target, {"x.conf": b"x" * 10}, mode="0600"))
    assert reports == [{"file": 1, "path": str(target / "x.conf"), "size": 10,
                        "sha256": hashlib.sha256(b"x" * 10).hexdigest(),
                        "created": True, "changed": True}]  # fmt: skip
    assert oct((target / "x.conf").stat().st_mode & 0o7777) == "0o600"
    assert "created   " in capsys.readouterr().out


def test_the_same_content_is_not_rewritten_but_its_mode_is_set(tmp_path):
    target = tmp_path / "t"
    the_plan = plan(tmp_path, target, {"x": b"same"})
    place_files.deploy(the_plan)
    before = (target / "x").stat()
    (target / "x").chmod(0o600)
    (report,) = place_files.deploy(the_plan)
    after = (target / "x").stat()
    assert report["changed"] is False and report["mode_changed"] is True
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert oct(after.st_mode & 0o777) == "0o644"


def test_content_that_does_not_match_its_digest_is_not_put_in_place(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "x").write_bytes(b"good old")
    the_plan = plan(tmp_path, target, {"x": b"expected"})
    Path(the_plan["files"][0]["staged"]).write_bytes(b"tampered")
    (report,) = place_files.deploy(the_plan)
    assert "SHA-256" in report["error"]
    assert (target / "x").read_bytes() == b"good old"
    assert sorted(os.listdir(target)) == ["x"]  # the temporary file is gone


def test_a_link_at_the_place_or_on_the_way_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "t"
    target.mkdir()
    (target / "x").symlink_to(victim)
    (report,) = place_files.deploy(plan(tmp_path, target, {"x": b"attack"}))
    assert "symbolic link" in report["error"]
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (report,) = place_files.deploy(plan(tmp_path, tmp_path / "link" / "deeper", {"y": b"a"}))
    assert "is a symbolic link or not a directory" in report["error"]
    assert victim.read_bytes() == b"precious"
    assert list((tmp_path / "real").iterdir()) == []


def test_a_missing_directory_without_create_path_is_refused(tmp_path):
    (report,) = place_files.deploy(plan(tmp_path, tmp_path / "no", {"x": b"a"}, create_path=False))
    assert "does not exist (create_path is false)" in report["error"]
    assert not (tmp_path / "no").exists()


def test_the_program_runs_as_python_c_text_and_writes_its_result(tmp_path):
    """As the executor starts it: the module's source as ``-c`` text, in isolated mode."""
    target = tmp_path / "t"
    the_plan = plan(tmp_path, target, {"x": b"a", "y": b"b"})
    Path(the_plan["files"][1]["staged"]).write_bytes(b"not b")
    done = subprocess.run([sys.executable, "-I", "-c", files.PROGRAM, json.dumps(the_plan)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert [r.get("error", "") == "" for r in json.loads(Path(the_plan["result"]).read_text())] \
        == [True, False]  # fmt: skip
    assert "failed    " in done.stdout and "created   " in done.stdout


def test_pip_installs_leave_only_the_wanted_versions_metadata(tmp_path):
    for entry in (
        "My.Tool-1.0.dist-info",
        "my_tool-2.0.dist-info",
        "my_tool",
        "other-1.0.dist-info",
    ):
        (tmp_path / entry).mkdir()
    stale = pip_install.stale_metadata(str(tmp_path), "my-tool", "2.0")
    assert stale == [str(tmp_path / "My.Tool-1.0.dist-info")]


def test_a_name_of_the_longest_a_directory_takes_is_placed(tmp_path):
    """The temporary file beside it has a short name of its own: not the target's with
    more around it, which NAME_MAX (255 bytes) refuses."""
    longest = "é" * 127 + "x"  # 255 bytes in UTF-8
    target = tmp_path / "t"
    (report,) = place_files.deploy(plan(tmp_path, target, {longest: b"content"}))
    assert "error" not in report and report["created"] is True
    assert os.listdir(target) == [longest]
    assert (target / longest).read_bytes() == b"content"
