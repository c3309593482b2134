"""Files and software that ``file`` and ``software`` jobs deploy: what a job may name,
where uploaded bytes are kept, and which jobs use a file.

A job names files and catalogue packages by id; each must be one its owner may view
(their own, or their team's: scheduler_app/access.py), else the job is refused as if
the id did not exist. The bytes of a file live in the ``files`` storage
(settings.STORAGES) under a name made here, never the uploader's.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import IO, Any

from django.core.files.storage import Storage, storages
from django.db import transaction

from scheduler_app import access
from scheduler_app.models import Job, Software, StoredFile
from scheduler_app.payloads import PayloadError, one_line, program_text, version

CHUNK = 1024 * 1024
# Names a file may not have on a node: they are not a file in the target directory.
_NOT_NAMES = ("", ".", "..")
# A pip requirement's project name (PEP 508); the version is the catalogue's or the job's.
_PIP_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
CATALOGUE_RIGHT = (
    f"the software catalogue holds commands that run on workers: changing it needs the "
    f"permission {access.RUN_CODE} ('{access.RUN_CODE_LABEL}')."
)


def storage() -> Storage:
    return storages["files"]


def file_name(value: str) -> str:
    """A plain file name (no directory, no control character); PayloadError otherwise."""
    one_line(value, "'name'")
    if value in _NOT_NAMES or "/" in value or "\\" in value or len(value) > 255:
        raise PayloadError(
            f"'name' must be a plain file name (no '/', not '.' or '..', at most 255 "
            f"characters); got {value[:60]!r}."
        )
    return value


def store(content: IO[bytes]) -> str:
    """Save ``content`` under a new name of our own; the name the storage gave it."""
    return storage().save(f"deploy/{uuid.uuid4().hex}", content)


def forget_after_commit(stored: StoredFile) -> None:
    """Delete the bytes of a file whose row is being deleted, once that deletion is
    committed: a rolled-back delete keeps its row and so must keep its bytes. A storage
    that fails is logged, not raised: the row is gone by then."""
    name = stored.storage_name
    transaction.on_commit(lambda: storage().delete(name), robust=True)


def chunks(stored: StoredFile) -> Iterator[bytes]:
    with storage().open(stored.storage_name, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def digest(parts: Iterator[bytes]) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    for part in parts:
        hasher.update(part)
        size += len(part)
    return hasher.hexdigest(), size


def jobs_using(stored: StoredFile) -> list[Job]:
    """The ``file`` jobs whose payload names the file."""
    return jobs_using_files([stored.pk]).get(stored.pk, [])


def jobs_using_files(file_ids: Iterable[int]) -> dict[int, list[Job]]:
    """The ``file`` jobs naming each of these files, read in one query (JSON containment
    is not portable to SQLite: the few file jobs are read and looked at here)."""
    wanted, found = set(file_ids), defaultdict(list)
    for job in Job.objects.filter(kind="file"):
        for file_id in set((job.payload or {}).get("files", [])) & wanted:
            found[file_id].append(job)
    return found


def jobs_installing(software: Software) -> list[Job]:
    """The ``software`` jobs whose payload installs the catalogue entry."""
    return jobs_installing_each([software.pk]).get(software.pk, [])


def jobs_installing_each(software_ids: Iterable[int]) -> dict[int, list[Job]]:
    """The ``software`` jobs installing each of these catalogue entries, in one query."""
    wanted, found = set(software_ids), defaultdict(list)
    for job in Job.objects.filter(kind="software"):
        packages = (job.payload or {}).get("packages", [])
        for software_id in {p.get("software") for p in packages} & wanted:
            found[software_id].append(job)
    return found


def viewable_ids(user: Any, jobs: Iterable[Job]) -> set[int]:
    """Which of these jobs ``user`` may view (one query)."""
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    return set(access.visible(user, rows, "").values_list("pk", flat=True))


def in_use_refusal(user: Any, what: str, users: list[Job]) -> str:
    """Why ``what`` cannot be deleted: the jobs using it that ``user`` may view, by name,
    and the others only counted (their names are not the user's to read)."""
    shown = viewable_ids(user, users)
    names = [job.name for job in users if job.pk in shown][:5]
    hidden = sum(job.pk not in shown for job in users)
    told = ", ".join(names) + (f"{', ' if names else ''}{hidden} of others'" if hidden else "")
    return f"{what} is used by jobs: {told}; change them first."


def pip_name(value: str) -> str:
    if value and not _PIP_NAME.fullmatch(value):
        raise PayloadError(
            "'pip' must be a project name such as requests (letters, digits, ._-); the "
            "version is the catalogue's."
        )
    return value


def check_command(value: str) -> str:
    if not value.strip():
        raise PayloadError("'check' must print the installed version.")
    return program_text(value, "'check'")


# A catalogue entry's fields (as the API names them) and the rule each must pass; each
# raises PayloadError with the reason. The API and the admin both judge by these.
SOFTWARE_RULES = {
    "version": lambda value: version(value, "'version'"),
    "pip": pip_name,
    "install": lambda value: program_text(value, "'install'"),
    "check": check_command,
    "uninstall": lambda value: program_text(value, "'uninstall'"),
}


def install_problem(install: str, pip: str) -> str | None:
    """Why an entry with this ``install`` and ``pip`` cannot be installed, or None."""
    if bool(install.strip()) == bool(pip):
        return ("give either 'install' (a shell command) or 'pip' (a requirement), "
                "not both and not neither.")  # fmt: skip
    return None


def check_references(owner: Any, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its files and packages checked against what ``owner`` may use;
    ``{"name", "version"}`` packages become ``{"software": id, "version"}``."""
    if kind == "file":
        _check_files(owner, payload)
        return payload
    if kind == "software":
        return {**payload, "packages": [_package(owner, p, i) for i, p in
                                        enumerate(payload["packages"])]}  # fmt: skip
    return payload


def _check_files(owner: Any, payload: dict[str, Any]) -> None:
    usable = access.visible(owner, StoredFile.objects.filter(pk__in=payload["files"]))
    names: dict[str, int] = {}
    found = dict(usable.values_list("pk", "name"))
    for file_id in payload["files"]:
        if file_id not in found:
            raise PayloadError(f"'files': file {file_id} does not exist.")
        if (other := names.setdefault(found[file_id], file_id)) != file_id:
            raise PayloadError(
                f"'files': files {other} and {file_id} are both named {found[file_id]!r}: "
                "one would overwrite the other."
            )


def _package(owner: Any, item: dict[str, Any], index: int) -> dict[str, Any]:
    usable = access.visible(owner, Software.objects.all())
    if "software" in item:
        if not usable.filter(pk=item["software"]).exists():
            raise PayloadError(f"'packages' item {index + 1}: software {item['software']} "
                               "does not exist.")  # fmt: skip
        return item
    named = usable.filter(name=item["name"]).order_by("id")
    match = named.filter(owner=owner).first() or named.first()
    if match is None:
        raise PayloadError(
            f"'packages' item {index + 1}: no software named {item['name']!r} in the catalogue."
        )
    return {"software": match.pk, "version": item["version"]}
