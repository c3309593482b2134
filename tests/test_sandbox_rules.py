"""The sandbox's rules without the stack: who job code runs as, what the checks say at
start, which directories it can enter, which files the worker closes to it."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler_app import checks, identity
from scheduler_app.models import Run
from tests.helpers import wait_for
from workers.executors import sandbox, trash

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the worker switches users only as root")


@as_root
def test_a_root_worker_runs_job_code_as_nobody_by_default(settings):
    settings.SCHEDULER_RUN_AS = ""
    assert identity.run_as().name == "nobody"
    assert checks.job_code_runs_unprivileged(None) == []


@as_root
def test_root_is_refused_unless_allowed_and_the_check_says_why(settings):
    settings.SCHEDULER_RUN_AS = "root"
    with pytest.raises(identity.IdentityError, match="SCHEDULER_ALLOW_ROOT=1 to accept"):
        identity.run_as()
    (error,) = checks.job_code_runs_unprivileged(None)
    assert error.id == "scheduler_app.E006"
    assert error.msg.startswith("Workers will refuse to run job code: job code would run as root")
    settings.SCHEDULER_ALLOW_ROOT = True
    assert identity.run_as().uid == 0
    (warning,) = checks.job_code_runs_unprivileged(None)
    assert warning.id == "scheduler_app.W003"


def test_an_unknown_user_is_an_error_that_names_it(settings):
    settings.SCHEDULER_RUN_AS = "no-such-user-here"
    (error,) = checks.job_code_runs_unprivileged(None)
    assert "'no-such-user-here', who does not exist on this machine" in error.msg


def test_a_redis_url_without_a_password_is_warned_of(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    (warning,) = checks.redis_has_a_password(None)
    assert warning.id == "scheduler_app.W004"
    settings.REDIS_URL = "redis://:pw@127.0.0.1:6379/0"
    assert checks.redis_has_a_password(None) == []


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is under a 0700 one)."""
    path = Path(tempfile.mkdtemp())
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@as_root
def test_a_directory_closed_on_the_way_is_named_with_its_mode(open_tmp):
    nobody = identity.Identity("nobody", 65534, 65534, (65534,))
    inner = open_tmp / "a" / "b"
    inner.mkdir(parents=True)
    (open_tmp / "a").chmod(0o700)
    assert sandbox.unreachable(str(inner), nobody) == (
        f"{open_tmp / 'a'} (mode drwx------, owner uid 0) cannot be entered by nobody "
        "(uid 65534), the user job code runs as (SCHEDULER_RUN_AS)."
    )
    assert sandbox.unreachable(str(open_tmp), nobody) == ""
    assert sandbox.unreachable("/usr/bin", nobody) == ""
    assert sandbox.unreachable("/no/such/dir", nobody) == "/no does not exist on this worker."


@as_root
def test_harden_closes_the_tree_but_what_jobs_may_use(settings, tmp_path):
    base = tmp_path / "clone"
    for name in ("config", "var/jobs", "var/redis", ".venv"):
        (base / name).mkdir(parents=True)
    (base / "manage.py").write_text("")
    (base / "var" / "scheduler.sqlite3").write_text("")
    for path in base.rglob("*"):
        path.chmod(0o755)
    base.chmod(0o755)
    settings.BASE_DIR, settings.VAR_DIR = base, base / "var"
    settings.SCHEDULER_ALLOWED_DIRS = [str(base / "var" / "jobs")]
    settings.SCHEDULER_RUN_AS = ""

    sandbox.harden()

    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
             for p in [base, *base.rglob("*")]}  # fmt: skip
    assert modes == {
        "clone": 0o711,
        "clone/config": 0o700,
        "clone/manage.py": 0o700,
        "clone/var": 0o711,
        "clone/var/jobs": 0o755,
        "clone/var/redis": 0o700,
        "clone/var/scheduler.sqlite3": 0o700,
        "clone/.venv": 0o755 if Path(os.sys.prefix) == base / ".venv" else 0o700,
    }


@as_root
def test_harden_opens_again_a_var_another_worker_closed(settings, tmp_path):
    """A worker started from the same tree with another VAR_DIR (a benchmark's) closes
    this var/ (0700) as none of its own; the next worker using it makes it passable."""
    base = tmp_path / "clone"
    (base / "var" / "jobs").mkdir(parents=True)
    base.chmod(0o755)
    (base / "var" / "jobs").chmod(0o755)
    settings.BASE_DIR, settings.SCHEDULER_RUN_AS = base, ""
    settings.VAR_DIR, settings.SCHEDULER_ALLOWED_DIRS = tmp_path / "elsewhere", []
    sandbox.harden()
    assert stat.S_IMODE((base / "var").stat().st_mode) == 0o700

    settings.VAR_DIR = base / "var"
    settings.SCHEDULER_ALLOWED_DIRS = [str(base / "var" / "jobs")]
    sandbox.harden()

    assert stat.S_IMODE((base / "var").stat().st_mode) == 0o711
    assert stat.S_IMODE(base.stat().st_mode) == 0o711


def test_harden_opens_again_a_virtualenv_another_worker_closed(settings, tmp_path, monkeypatch):
    """A worker of the same tree run by another virtualenv's Python closes this tree's
    .venv (0700) as none of its own; the next worker running from it makes it passable,
    or job code could not run the lent Python (its pytest kind found no pytest)."""
    base = tmp_path / "clone"
    (base / ".venv" / "bin").mkdir(parents=True)
    (base / "var" / "jobs").mkdir(parents=True)
    base.chmod(0o755)
    (base / ".venv").chmod(0o755)
    settings.BASE_DIR, settings.SCHEDULER_RUN_AS = base, ""
    settings.VAR_DIR, settings.SCHEDULER_ALLOWED_DIRS = base / "var", [str(base / "var" / "jobs")]
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "other" / ".venv"))
    sandbox.harden()
    assert stat.S_IMODE((base / ".venv").stat().st_mode) == 0o700

    monkeypatch.setattr(sys, "prefix", str(base / ".venv"))
    sandbox.harden()

    assert stat.S_IMODE((base / ".venv").stat().st_mode) == 0o711


def test_the_job_directories_in_var_are_made_for_the_run_identity(settings, tmp_path):
    """make_job_dirs: a missing allowed directory inside var/ is made, owned by the run's
    identity (the default var/jobs works on a first start); one elsewhere is not."""
    outside = tmp_path / "elsewhere" / "jobs"
    settings.VAR_DIR = tmp_path / "var"
    settings.SCHEDULER_ALLOWED_DIRS = [str(tmp_path / "var" / "jobs"), str(outside)]
    made = sandbox.make_job_dirs()
    assert made == [str(tmp_path / "var" / "jobs")]
    info = (tmp_path / "var" / "jobs").stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (identity.run_as().uid, "0o755")
    assert not outside.exists()
    assert sandbox.make_job_dirs() == []  # made once


def test_a_thrown_away_workspace_is_gone_from_its_name_at_once_and_removed_after(tmp_path):
    place = tmp_path / f"{sandbox.WORKSPACE_PREFIX}7-abc"
    (place / "left").mkdir(parents=True)
    (place / "left" / "file").write_text("x")

    trash.throw_away(place)

    assert not place.exists()
    wait_for(lambda: list(tmp_path.iterdir()) == [])


def test_the_sweep_removes_what_a_stopped_worker_left_but_follows_no_link(tmp_path):
    left = tmp_path / f".{sandbox.WORKSPACE_PREFIX}8-abc{trash.SUFFIX}"
    (left / "inside").mkdir(parents=True)
    kept = tmp_path / "kept"
    (kept / "inside").mkdir(parents=True)
    (tmp_path / f".{sandbox.WORKSPACE_PREFIX}9-abc{trash.SUFFIX}").symlink_to(kept)

    assert trash.sweep(tmp_path, sandbox.WORKSPACE_PREFIX) == 2

    assert not left.exists()
    assert (kept / "inside").is_dir()


def test_a_run_s_children_run_as_the_identity_its_workspace_was_made_for(settings, tmp_path):
    """Looked up once per run: a child of the run needs no second lookup of the user."""
    settings.SCHEDULER_WORKSPACES = str(tmp_path)
    made_for = identity.Identity("someone", os.geteuid(), os.getegid(), ())
    assert sandbox.job_identity() == identity.run_as()  # no workspace open: looked up
    with sandbox.workspace(Run(id=3), made_for):
        assert sandbox.job_identity() is made_for
    assert sandbox.job_identity() == identity.run_as()
