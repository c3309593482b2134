"""Where and as whom job code runs: the child's identity, environment, directory, Python.

Every child that runs a job's code (command, commands, script, python, pytest, any
condition) runs as the run-as identity (scheduler_app/identity.py), with:

- an environment of the documented variables only (:data:`INHERITED_ENV` from the
  worker, HOME, USER, LOGNAME, the run's SCHEDULER_* marks) and the job's ``env``:
  none of the worker's secrets (SECRET_KEY, DATABASE_URL, REDIS_URL...);
- a directory of its own for the run (:func:`workspace`), its start directory when
  the job names no working_dir, made for the identity and removed when the run ends;
- a Python it can start (:func:`python`).

At start the worker narrows the modes of its own files (:func:`harden`) so that the
run-as identity cannot read them. The ``celery`` kind is the one exception: it runs
one of the app's own registered tasks, as the worker, with the worker's settings.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from scheduler_app import identity
from scheduler_app.models import Run
from workers.executors import trash
from workers.executors.process import ChildSetup
from workers.executors.process import Identity as ChildIdentity

logger = logging.getLogger(__name__)

# The worker's variables a child sees; everything else it gets is set here or is the job's.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
WORKSPACE_PREFIX = "cronfleet-run-"


@dataclass(frozen=True)
class _Place:
    """The open workspace of a run, and the identity it was made for."""

    path: Path
    who: identity.Identity


_workspace: contextvars.ContextVar[_Place | None] = contextvars.ContextVar(
    "workspace", default=None
)


def child_identity(who: identity.Identity) -> ChildIdentity | None:
    """What the child switches to; None when it is the worker's own (no switch)."""
    if who.uid == os.geteuid():
        return None
    return ChildIdentity(who.uid, who.gid, who.groups)


def base_env(who: identity.Identity) -> dict[str, str]:
    """The environment every job's child starts from, before the job's own env."""
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(USER=who.name, LOGNAME=who.name)
    if (place := _workspace.get()) is not None:
        env["HOME"] = str(place.path)
    return env


def workspaces() -> str:
    """The directory the runs' workspaces are made in."""
    return settings.SCHEDULER_WORKSPACES or tempfile.gettempdir()


def current_workspace() -> Path | None:
    place = _workspace.get()
    return None if place is None else place.path


def job_identity() -> identity.Identity:
    """As whom the current run's code runs: the identity its workspace was made for
    (looked up once per run, not per child); looked up now outside a workspace."""
    place = _workspace.get()
    return identity.run_as() if place is None else place.who


@contextlib.contextmanager
def workspace(run: Run, who: identity.Identity) -> Iterator[Path]:
    """A fresh directory for the run, owned by the identity (0700), removed at the end
    (renamed away at once, deleted by a thread: trash.py): the start directory and HOME
    of every child of the run."""
    path = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{run.id}-", dir=workspaces()))
    token = _workspace.set(_Place(path, who))
    try:
        if who.uid != os.geteuid():
            os.chown(path, who.uid, who.gid)
        yield path
    finally:
        _workspace.reset(token)
        trash.throw_away(path)


def unreachable(path: str, who: identity.Identity) -> str:
    """Why ``who`` cannot enter the directory ``path``, or '' when it can."""
    current = Path("/")
    for part in Path(path).parts[1:]:
        current = current / part
        try:
            info = current.stat()
        except OSError:
            return f"{current} does not exist on this worker."
        if not _may_enter(info, who):
            return (
                f"{current} (mode {stat.filemode(info.st_mode)}, owner uid {info.st_uid}) "
                f"cannot be entered by {who.describe()}, the user job code runs as "
                "(SCHEDULER_RUN_AS)."
            )
    return ""


def _may_enter(info: os.stat_result, who: identity.Identity) -> bool:
    if who.uid == 0:
        return True
    if info.st_uid == who.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in who.groups or info.st_gid == who.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


@dataclass(frozen=True)
class Python:
    """The interpreter of the python, script and pytest kinds, and what it needs in its env."""

    path: str
    env: dict[str, str] = field(default_factory=dict)


def python(who: identity.Identity) -> Python:
    """The first interpreter the identity can start: SCHEDULER_PYTHON when set; else the
    worker's own; else the system's python3 of the same version, lent the worker's
    packages (PYTHONPATH), e.g. when the worker's lives under a private home (0700)."""
    return _resolve_python(who.uid, who.gid, who.groups)


@functools.cache
def _resolve_python(uid: int, gid: int, groups: tuple[int, ...]) -> Python:
    who = ChildIdentity(uid, gid, groups) if uid != os.geteuid() else None
    if settings.SCHEDULER_PYTHON:
        return Python(settings.SCHEDULER_PYTHON)
    if _starts(Python(sys.executable), who):
        return Python(sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    lent = {"PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    for name in (version, "python3"):
        if (found := shutil.which(name, path=DEFAULT_PATH)) is None:
            continue
        for candidate in (Python(found, lent), Python(found)):
            if _starts(candidate, who):
                return candidate
    logger.error("no Python that job code (uid %s) can start; using %s", uid, sys.executable)
    return Python(sys.executable)


def _starts(candidate: Python, who: ChildIdentity | None) -> bool:
    """The candidate runs as ``who``, is this worker's version and imports what it is lent."""
    check = f"import sys; sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})"
    if candidate.env:
        check += "; import pytest"
    try:
        done = subprocess.run(
            [candidate.path, "-c", check],
            env={"PATH": DEFAULT_PATH, **candidate.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            preexec_fn=ChildSetup(identity=who, cwd="/"),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def make_job_dirs() -> list[str]:
    """Make the directories jobs may use (SCHEDULER_ALLOWED_DIRS) that lie in var/ and do
    not exist yet, owned by the run-as identity, so the defaults work out of the box (a
    ``file`` job's target under var/jobs, a job's files); the ones made. A directory
    elsewhere is the operator's to make: only named in the log when it is missing."""
    try:
        who = identity.run_as()
    except identity.IdentityError:
        return []  # no job code runs here; the worker says why at start
    var, made = Path(settings.VAR_DIR), []
    for directory in map(Path, settings.SCHEDULER_ALLOWED_DIRS):
        if directory.exists():
            continue
        if var not in directory.parents:
            logger.warning("SCHEDULER_ALLOWED_DIRS names %s, which does not exist", directory)
            continue
        directory.mkdir(mode=0o755, parents=True)
        os.chown(directory, who.uid, who.gid)
        made.append(str(directory))
    return made


def harden() -> list[str]:
    """Make the worker's own files unreadable to the run-as identity; what was changed.

    Only when job code runs as another user (the worker's own can read them anyway):
    the source tree (BASE_DIR) 0711 with every entry in it 0700/0600 but the virtualenv
    (``.venv``: third-party code, which the lent Python reads) and ``var/``; ``var/``
    0711 with every entry 0700/0600 but the directories jobs may use
    (SCHEDULER_ALLOWED_DIRS); the SQLite database file and its -wal/-shm 0600; the
    settings module's directory 0700. 0711 keeps a directory passable (a job may
    still reach the virtualenv or var/jobs by name) but not listable.
    """
    if identity.shares_worker_identity():
        return []
    base, var = Path(settings.BASE_DIR), Path(settings.VAR_DIR)
    keep = {Path(sys.prefix), var, *(Path(d) for d in settings.SCHEDULER_ALLOWED_DIRS)}
    changed = []
    for directory in (base, var):
        if directory.is_dir():
            changed += _narrow(directory, 0o711)
            for entry in directory.iterdir():
                if not any(_within(kept, entry) for kept in keep):
                    changed += _narrow(entry, 0o700 if entry.is_dir() else 0o600)
    for path in _private_files():
        changed += _narrow(path, 0o700 if path.is_dir() else 0o600)
    return changed + _open_way(base, keep)


def _open_way(base: Path, kept: set[Path]) -> list[str]:
    """The directories from ``base`` down to what jobs may use, those included, made
    passable (x, never r or w) for the run-as identity: a worker started from the same
    tree with another VAR_DIR (a benchmark's) or another virtualenv closed this ``var/``
    or this ``.venv`` as none of its own, and narrowing alone would never open it again."""
    way = {parent for target in kept for parent in (target, *target.parents)
           if parent == base or base in parent.parents}  # fmt: skip
    return [change for directory in sorted(way) for change in _passable(directory)]


def _passable(path: Path) -> list[str]:
    with contextlib.suppress(OSError):
        current = stat.S_IMODE(path.lstat().st_mode)
        opened = current | 0o011
        if opened != current and path.is_dir() and not path.is_symlink():
            path.chmod(opened)
            return [f"{path} {oct(opened)}"]
    return []


def _private_files() -> list[Path]:
    """The database file, its companions and the settings' package, wherever they are."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")
    found = [Path(sys.modules[module].__file__ or "").parent] if module in sys.modules else []
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        for name in (db["NAME"], db.get("TEST", {}).get("NAME")):
            if name:
                found += [Path(f"{name}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
    return [path for path in found if path.exists()]


def _within(kept: Path, entry: Path) -> bool:
    """``entry`` is ``kept`` or holds it (a directory on the way to something kept)."""
    return kept == entry or entry in kept.parents


def _narrow(path: Path, mode: int) -> list[str]:
    """Take group and other bits away down to ``mode`` (the owner's are left as they are)."""
    with contextlib.suppress(OSError):
        current = stat.S_IMODE(path.lstat().st_mode)
        narrowed = current & (0o700 | mode)
        if narrowed != current and not path.is_symlink():
            path.chmod(narrowed)
            return [f"{path} {oct(narrowed)}"]
    return []
