"""Put staged files in place on a node: the child program of the ``file`` kind.

It runs as the run-as identity (never as the worker, who is root on a node), started
like any job's child (workers/executors/files.py), and uses the standard library
only: it is passed to Python as ``-c`` text, since that identity may not read the
scheduler's source. Its one argument is a JSON plan::

    {"target_path": "/srv/app/conf", "create_path": true, "mode": "0644",
     "overwrite": true, "result": "<where to write the result JSON>",
     "files": [{"id": 1, "name": "a.conf", "staged": "<path>", "sha256": "...",
                "size": 12}]}

The directory is walked from ``/`` one component at a time with O_NOFOLLOW, so a
symbolic link anywhere on the way (or at a file's place) is refused, never followed.
Each file is written to a temporary file in the target directory (a short random name,
made with O_EXCL), checked against its SHA-256, fsynced and renamed over its name;
then the directory is fsynced. A file already there with the same digest is left as
it is (its mode set if it differs).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
import sys
from typing import Any

CHUNK = 1024 * 1024
# O_PATH: a directory on the way need only be passable (0711), as for any path lookup.
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_DIR_MODE = 0o755
TEMPORARY_PREFIX = ".cronfleet-"  # a file being written, beside its place: 31 bytes in all


class Refused(Exception):
    """This file (or the whole target) cannot be placed; the message says why."""


def open_target(path: str, create: bool) -> int:
    """A descriptor of the directory ``path``, reached without following any link."""
    fd = os.open("/", DIR_FLAGS)
    walked = ""
    try:
        for part in path.strip("/").split("/"):
            if not part:
                continue
            walked += "/" + part
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise Refused(f"{walked} does not exist (create_path is false).") from None
                try:
                    os.mkdir(part, NEW_DIR_MODE, dir_fd=fd)
                except OSError as exc:
                    why = f"{walked} cannot be made: {exc.strerror}"
                    raise Refused(f"{why} (the run's identity may not write there).") from None
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(f"{walked} is a symbolic link or not a directory; "
                                  "it is not followed.") from None  # fmt: skip
                raise Refused(f"{walked}: {exc.strerror}.") from None
            os.close(fd)
            fd = child
        # Read access to the directory itself, to fsync it after the renames.
        readable = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return readable


def digest_of(fd: int) -> str:
    hasher = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


def existing(directory: int, name: str) -> tuple[os.stat_result, str] | None:
    """The file already at ``name`` and its digest; None when there is none."""
    try:
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise Refused("a symbolic link is at its place; it is not followed nor replaced.")
    if not stat.S_ISREG(info.st_mode):
        raise Refused("something that is not a regular file is at its place.")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    try:
        return info, digest_of(fd)
    finally:
        os.close(fd)


def write_new(directory: int, item: dict[str, Any], mode: int) -> None:
    """The staged file copied to a temporary name, checked, fsynced, renamed into place."""
    # Not derived from the name: a name near NAME_MAX (255 bytes) would make it too long.
    temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}.tmp"
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600, dir_fd=directory)  # fmt: skip
    try:
        hasher = hashlib.sha256()
        source = os.open(item["staged"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while chunk := os.read(source, CHUNK):
                hasher.update(chunk)
                os.write(out, chunk)  # a regular file: whole writes
        finally:
            os.close(source)
        if hasher.hexdigest() != item["sha256"]:
            raise Refused(f"its content's SHA-256 is {hasher.hexdigest()}, not the uploaded "
                          f"{item['sha256']}: not put in place.")  # fmt: skip
        os.fchmod(out, mode)
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(temporary, dir_fd=directory)
        raise
    os.close(out)
    os.rename(temporary, item["name"], src_dir_fd=directory, dst_dir_fd=directory)


def place(directory: int, item: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """Put one file in place; what was done, for the run's result."""
    mode = int(plan["mode"], 8)
    found = existing(directory, item["name"])
    report = {"created": found is None, "changed": True}
    if found is not None:
        info, digest = found
        if digest == item["sha256"]:
            if stat.S_IMODE(info.st_mode) != mode:
                fd = os.open(item["name"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=directory)  # fmt: skip
                try:
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)
                report["mode_changed"] = True
            report["changed"] = False
            return report
        if not plan["overwrite"]:
            raise Refused(f"a different file is there (SHA-256 {digest}) and overwrite is false.")
    write_new(directory, item, mode)
    return report


def deploy(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file of the plan placed (or refused): one report each, and a line each on stdout."""
    target = plan["target_path"]
    reports, problem = [], ""
    try:
        directory = open_target(target, plan["create_path"])
    except Refused as exc:
        directory, problem = None, f"target_path {exc}"
    for item in plan["files"]:
        path = os.path.join(target, item["name"])
        report = {"file": item["id"], "path": path, "size": item["size"],
                  "sha256": item["sha256"]}  # fmt: skip
        try:
            if directory is None:
                raise Refused(problem)
            report.update(place(directory, item, plan))
        except (Refused, OSError) as exc:
            report.update(changed=False, error=str(exc))
        reports.append(report)
        print(describe(report), flush=True)
    if directory is not None:
        os.fsync(directory)
        os.close(directory)
    return reports


def describe(report: dict[str, Any]) -> str:
    what = f"{report['path']} ({report['size']} bytes, sha256 {report['sha256'][:12]})"
    if report.get("error"):
        return f"failed    {what}: {report['error']}"
    if report.get("created"):
        return f"created   {what}"
    return f"{'written' if report['changed'] else 'unchanged':<9} {what}"


def main() -> None:
    plan = json.loads(sys.argv[1])
    reports = deploy(plan)
    with open(plan["result"], "x") as out:
        json.dump(reports, out)
    sys.exit(1 if any(r.get("error") for r in reports) else 0)


if __name__ == "__main__":
    main()
