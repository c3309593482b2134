"""Deployments to two nodes on the real stack: the stack's ``w1`` and a second worker,
``w2``, that sees a disk of its own at the deployment's target path (a mount namespace
with another directory bound there), as a second machine would. A file lands on each
node byte-identical with its hash checked and a second deploy reports it unchanged on
each; a catalogue package moves from one version to another on each node, then is left
alone on each. Without root or ``unshare`` the tests are skipped, saying why."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from scheduler_app import identity
from scheduler_app.models import Node, Run
from tests.helpers import Stack, create_job, run_now, wait_for, wait_runs
from tests.test_deploy_live import catalogue, upload

pytestmark = pytest.mark.stack

# Runs in w2's new mount namespace, then becomes the worker: its own disk at the target.
BIND_THEN_EXEC = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'


def mount_namespaces_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "a mount namespace of its own for the second node needs root"
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
    if probe.returncode:
        return f"unshare --mount fails here: {probe.stderr.decode(errors='replace').strip()}"
    return None


@dataclass
class TwoDisks:
    """The target directory as each node sees it: w1's is the real one, w2's another."""

    target: Path
    disks: dict[str, Path]  # node short name -> the directory it writes to
    nodes: dict[str, Node]


@pytest.fixture
def two_disks(live: Stack) -> Iterator[TwoDisks]:
    if reason := mount_namespaces_unavailable():
        pytest.skip(reason)
    who = identity.run_as()
    root = Path(settings.SCHEDULER_ALLOWED_DIRS[0])
    target, other = root / f"fleet-{uuid.uuid4().hex[:8]}", root / f"w2-disk-{uuid.uuid4().hex[:8]}"
    for path in (target, other):
        path.mkdir(parents=True)
        os.chown(path, who.uid, who.gid)
    wrap = ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", BIND_THEN_EXEC, "sh", str(other), str(target)]  # fmt: skip
    live.start_worker(name="worker-w2", node="w2", wrap=wrap, WORKER_PRESENCE_EVERY="1")
    try:
        live.wait_workers(2)
        nodes = wait_for(both_registered, timeout=60)
        yield TwoDisks(target, {"w1": target, "w2": other}, nodes)
    finally:
        if "worker-w2" in live.procs:
            live.stop("worker-w2")
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


def both_registered() -> dict[str, Node] | None:
    """both workers registered as nodes"""
    found = {node.name.split("@")[0]: node for node in Node.objects.all()}
    return found if {"w1", "w2"} <= set(found) else None


def on_each_node(api, two_disks: TwoDisks, kind: str, payload: dict) -> dict:
    names = [node.name for node in two_disks.nodes.values()]
    return create_job(api, name=f"{kind}-{uuid.uuid4().hex[:6]}", kind=kind, schedule="manual",
                      payload=payload, targets={"nodes": names}, target_mode="each")  # fmt: skip


def run_on_each(api, job: dict) -> dict[str, Run]:
    """Run the job now; its children (one per node) once it ended, by node short name."""
    parent_id = run_now(api, job)
    wait_runs(job["id"], 1, timeout=90, id=parent_id, finished_at__isnull=False)
    parent = Run.objects.get(id=parent_id)
    assert parent.status == "succeeded", (parent.error, parent.result)
    children = Run.objects.filter(parent_id=parent_id)
    return {child.node.split("@")[0]: child for child in children}


def test_a_file_lands_on_each_node_and_a_second_deploy_reports_it_unchanged(api, two_disks):
    content = b"pool_size = 20\n" + os.urandom(2048)
    digest = hashlib.sha256(content).hexdigest()
    stored = upload(api, content, "db.conf")
    assert stored["sha256"] == digest
    job = on_each_node(api, two_disks, "file",
                       {"files": [stored["id"]], "target_path": str(two_disks.target)})  # fmt: skip

    first = run_on_each(api, job)
    assert set(first) == {"w1", "w2"}
    placed = {name: disk / "db.conf" for name, disk in two_disks.disks.items()}
    for name, child in first.items():
        assert child.status == "succeeded", (child.error, child.output)
        (report,) = child.result["files"]
        assert (report["sha256"], report["created"], report["changed"]) == (digest, True, True)
        assert placed[name].read_bytes() == content  # byte-identical on its own disk
    assert placed["w1"].stat().st_ino != placed["w2"].stat().st_ino  # two files, two disks
    stats = {name: path.stat() for name, path in placed.items()}

    second = run_on_each(api, job)
    for name, child in second.items():
        assert child.status == "succeeded", (child.error, child.output)
        assert [r["changed"] for r in child.result["files"]] == [False]
        assert f"unchanged {two_disks.target / 'db.conf'}" in child.output
        again = placed[name].stat()
        assert (again.st_ino, again.st_mtime_ns) == (stats[name].st_ino, stats[name].st_mtime_ns)


def test_a_package_moves_to_its_version_on_each_node_then_is_left_alone(api, two_disks):
    who = identity.run_as()
    for disk in two_disks.disks.values():
        (disk / "tool.version").write_text("1.0\n")
        os.chown(disk / "tool.version", who.uid, who.gid)
    entry = catalogue(api, two_disks.target)  # install writes the version file, check cats it
    job = on_each_node(api, two_disks, "software", {"packages": [{"software": entry["id"]}]})

    first = run_on_each(api, job)
    assert set(first) == {"w1", "w2"}
    for name, child in first.items():
        assert child.status == "succeeded", (child.error, child.output)
        (report,) = child.result["packages"]
        assert (report["before"], report["after"], report["action"]) == ("1.0", "2.0", "installed")
        assert (two_disks.disks[name] / "tool.version").read_text() == "2.0\n"

    second = run_on_each(api, job)
    for child in second.values():
        (report,) = child.result["packages"]
        assert (report["before"], report["after"], report["action"]) == ("2.0", "2.0", "unchanged")
