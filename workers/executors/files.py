"""``file``: uploaded files put in a directory of the node, as the run-as identity.

The worker reads each file from the ``files`` storage and checks it against the
SHA-256 recorded at upload while staging it in the run's workspace (readable by the
run-as identity, written with O_EXCL|O_NOFOLLOW: the workspace is that identity's).
Then a child started like every job's child (same identity, limits, timeout, live
output) runs :mod:`workers.executors.place_files`, which writes them in place
atomically and checks each digest again before the rename. The worker itself, root
on a node, never writes in the target directory.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from scheduler_app import deployment
from scheduler_app.models import Run, StoredFile
from scheduler_app.payloads import PayloadError, allowed_path
from workers.executors import place_files, sandbox
from workers.executors.base import Outcome
from workers.executors.child import outcome_of, run_child

PROGRAM = inspect.getsource(place_files)
MAX_RESULT_BYTES = 4 * 1024 * 1024


class StagingError(Exception):
    """A file could not be read from storage as it was uploaded."""


def stage(stored: StoredFile, directory: Path, directory_fd: int, index: int) -> str:
    """Copy the stored file into ``directory`` (opened as ``directory_fd``); StagingError
    when its digest or size is not the one recorded at upload. Created relative to the
    descriptor: the workspace is the run-as identity's, who may rename the directory and
    put a link at its name, which a path would follow as root."""
    name = f"{index}.bin"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o644, dir_fd=directory_fd)
    with os.fdopen(fd, "wb") as out:
        try:
            sha256, size = deployment.digest(_copy(deployment.chunks(stored), out))
        except OSError as exc:
            raise StagingError(f"file {stored.pk} ({stored.name}) cannot be read from "
                               f"storage: {exc}") from exc  # fmt: skip
    if (sha256, size) != (stored.sha256, stored.size):
        raise StagingError(
            f"file {stored.pk} ({stored.name}) in storage is {size} bytes with SHA-256 "
            f"{sha256}, not the {stored.size} bytes with {stored.sha256} uploaded: not deployed."
        )
    return str(directory / name)


def open_own_directory(path: Path) -> int:
    """A descriptor of the directory this process just made at ``path``; StagingError
    when something else is there by now (a link, or another's directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise StagingError(f"the staging directory {path} was replaced: {exc}") from exc
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise StagingError(f"the staging directory {path} was replaced by another's.")
    return fd


def _copy(parts: Any, out: Any) -> Any:
    for part in parts:
        out.write(part)
        yield part


def plan_of(run: Run, workspace: Path) -> dict[str, Any]:
    """What the child is to do: the payload, with each file staged in ``workspace``."""
    payload = run.job.payload
    files = {f.pk: f for f in StoredFile.objects.filter(pk__in=payload["files"])}
    # Fresh names: the workspace is the run-as identity's, and a condition ran in it.
    staging = Path(tempfile.mkdtemp(prefix="deploy-staged-", dir=workspace))
    staging_fd = open_own_directory(staging)
    items = []
    try:
        os.fchmod(staging_fd, 0o755)
        for index, file_id in enumerate(payload["files"]):
            if file_id not in files:
                raise StagingError(f"file {file_id} no longer exists.")
            stored = files[file_id]
            staged = stage(stored, staging, staging_fd, index)
            items.append({"id": file_id, "name": stored.name, "sha256": stored.sha256,
                          "size": stored.size, "staged": staged})  # fmt: skip
    finally:
        os.close(staging_fd)
    return {
        "target_path": payload["target_path"], "create_path": payload["create_path"],
        "mode": payload["mode"], "overwrite": payload["overwrite"], "files": items,
        "result": str(workspace / f"deploy-result-{secrets.token_hex(8)}.json"),
    }  # fmt: skip


def read_result(path: str) -> list[dict[str, Any]] | None:
    """The child's per-file reports (a file the run-as identity wrote: read with care)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_RESULT_BYTES + 1)
    try:
        reports = json.loads(data) if len(data) <= MAX_RESULT_BYTES else None
    except ValueError:
        return None
    return reports if isinstance(reports, list) else None


class FileExecutor:
    def execute(self, run: Run) -> Outcome:
        workspace = sandbox.current_workspace()
        assert workspace is not None  # executors.execute opens it for this kind
        try:
            allowed_path(run.job.payload["target_path"])  # this node's SCHEDULER_ALLOWED_DIRS
            plan = plan_of(run, workspace)
        except (PayloadError, StagingError) as exc:
            return Outcome(Run.Status.FAILED, error=str(exc))
        except OSError as exc:
            return Outcome(Run.Status.FAILED, error=f"the files cannot be staged: {exc}")
        interpreter = sandbox.python(sandbox.job_identity())
        child = run_child(run, [interpreter.path, "-I", "-c", PROGRAM, json.dumps(plan)])
        reports = read_result(plan["result"])
        outcome = outcome_of(child, run.job)
        if reports is None:
            if outcome.status != Run.Status.SUCCEEDED:
                return outcome
            return Outcome(Run.Status.FAILED, child.exit_code, child.output,
                           "the file writer gave no result.")  # fmt: skip
        result = {"target_path": plan["target_path"], "files": reports,
                  "changed": sum(1 for r in reports if r.get("changed"))}  # fmt: skip
        failed = [r for r in reports if r.get("error")]
        if failed and outcome.status in (Run.Status.SUCCEEDED, Run.Status.FAILED):
            error = (f"{len(failed)} of {len(reports)} files failed; {failed[0]['path']}: "
                     f"{failed[0]['error']}")  # fmt: skip
            return Outcome(Run.Status.FAILED, child.exit_code, child.output, error, result)
        return dataclasses.replace(outcome, result=result)
