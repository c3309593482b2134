"""The sandbox for job code, on the real stack: who a job runs as, what it can reach (the
database file, the settings, the worker's secrets, the broker), where it starts, and that
nothing it started outlives its run."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from scheduler_app import identity
from scheduler_app.models import Run
from tests.helpers import create_job, make_job, processes_running, run_now, wait_runs
from workers.executors import containment

pytestmark = pytest.mark.stack

WORKER_SECRETS = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_SETTINGS_MODULE")


def run_once(api, **fields) -> Run:
    fields.setdefault("schedule", "manual")
    job = create_job(api, name=f"sandbox-{uuid.uuid4().hex[:8]}", **fields)
    run_now(api, job)
    (run,) = wait_runs(job["id"], 1, timeout=60, finished_at__isnull=False)
    return run


def private_files() -> list[str]:
    """The settings and, on SQLite, the database file the stack uses."""
    files = [str(Path(settings.BASE_DIR) / "config" / "settings.py")]
    if connection.vendor == "sqlite":
        files.append(str(connection.settings_dict["NAME"]))
    return files


def test_a_job_runs_unprivileged_and_reaches_no_file_nor_secret_of_the_worker(live, api):
    reads = "; ".join(f"cat {path}" for path in private_files())
    run = run_once(api, payload={"command": f"id -u; {reads}; env"})

    uid, *rest = run.output.splitlines()
    assert int(uid) == identity.run_as().uid != 0
    assert (
        f"job code runs as {identity.run_as().describe()}; a run's processes are contained by"
        in live.log("worker")
    )
    denied = [line for line in rest if "Permission denied" in line]
    assert len(denied) == len(private_files()), run.output
    names = {line.partition("=")[0] for line in rest if "=" in line}
    assert not [name for name in names if name.startswith(WORKER_SECRETS)], names
    password = urlsplit(settings.REDIS_URL).password
    assert password and password not in run.output
    assert settings.SECRET_KEY not in run.output


def test_a_job_cannot_send_the_workers_a_task_through_redis(live, api, outsider):
    target = {"id": make_job(outsider, name="not-yours", schedule={"type": "manual"}).id}
    port = urlsplit(settings.REDIS_URL).port
    # What a worker would take: a message for workers.fire_job on the default queue,
    # pushed in Redis's own protocol (a job has no Celery of its own to hand).
    send = (
        "import json, socket\n"
        f"body = json.dumps({{'task': 'workers.fire_job', 'args': [{target['id']}]}})\n"
        "words = [b'LPUSH', b'default', body.encode()]\n"
        "wire = b'*%d\\r\\n' % len(words) + b''.join("
        "b'$%d\\r\\n%s\\r\\n' % (len(w), w) for w in words)\n"
        f"conn = socket.create_connection(('127.0.0.1', {port}))\n"
        "conn.sendall(wire)\n"
        "print(conn.recv(200).decode().strip())\n"
    )
    through_python = run_once(api, kind="python", payload={"code": send})
    assert through_python.output.startswith("-NOAUTH"), through_python.output

    raw = f"redis-cli -h 127.0.0.1 -p {port} LPUSH default x"
    if shutil.which("redis-cli"):
        through_cli = run_once(api, payload={"command": raw})
        assert "NOAUTH" in through_cli.output, through_cli.output
    assert not Run.objects.filter(job_id=target["id"]).exists()


@pytest.fixture(params=["auto", "marker"])
def contained(request, live) -> Iterator[str]:
    """A worker of its own queue with each containment mode; the queue's name."""
    queue = f"contain-{request.param}"
    live.start_worker(name=queue, node=queue, queues=queue, SCHEDULER_CONTAINMENT=request.param)
    try:
        live.wait_workers(2)
        yield queue
    finally:
        live.stop(queue)


def test_nothing_a_run_started_survives_it(contained, api):
    seconds = str(600 + uuid.uuid4().int % 300)  # a sleep of this test's own
    run = run_once(api, queue=contained,
                   payload={"command": f"setsid sleep {seconds} & setsid sleep {seconds} & "
                                       "echo started"})  # fmt: skip
    assert (run.status, run.output) == ("succeeded", "started\n")
    assert processes_running("sleep", seconds) == []


@pytest.mark.skipif(containment.mode() != "cgroup", reason="no cgroup v2 for runs here")
def test_in_a_cgroup_not_even_a_process_that_clears_its_environment_survives(live, api):
    seconds = str(900 + uuid.uuid4().int % 300)
    run = run_once(api, payload={"command": f"setsid env -i sleep {seconds} & echo started"})
    assert run.status == "succeeded"
    assert processes_running("sleep", seconds) == []


def test_a_job_without_working_dir_starts_in_a_directory_of_its_own(live, api):
    run = run_once(api, payload={"command": 'pwd; echo "$HOME"; echo x > made-here; ls -ld .'})
    where, home, listing = run.output.splitlines()
    assert where == home and Path(where).name.startswith(f"cronfleet-run-{run.id}-")
    assert listing.startswith("drwx------") and identity.run_as().name in listing
    assert not Path(where).exists()  # removed with the run


@pytest.fixture
def closed_dir() -> Iterator[Path]:
    """A directory jobs may use by the rules, which the run-as user cannot enter (0700)."""
    path = Path(settings.SCHEDULER_ALLOWED_DIRS[0]) / f"closed-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o700)
    yield path
    shutil.rmtree(path)


def test_an_unreachable_working_dir_says_what_to_change(live, api, closed_dir):
    if identity.run_as().uid == os.geteuid():
        pytest.skip("job code runs as this user: it can enter the directory")
    run = run_once(api, payload={"command": "true"}, working_dir=str(closed_dir))
    who = identity.run_as()
    assert run.status == "failed"
    assert run.error == (
        f"working_dir {closed_dir} cannot be used: {closed_dir} (mode drwx------, owner uid "
        f"{os.geteuid()}) cannot be entered by {who.name} (uid {who.uid}), the user job code "
        f"runs as (SCHEDULER_RUN_AS). Choose a working_dir that {who.name} can enter, or "
        "give it access to that directory."
    )


def test_a_worker_told_to_run_jobs_as_root_refuses_and_says_why(live, api):
    queue = "as-root"
    live.start_worker(name=queue, node=queue, queues=queue, SCHEDULER_RUN_AS="root")
    try:
        live.wait_workers(2)
        run = run_once(api, queue=queue, payload={"command": "id -u"})
    finally:
        live.stop(queue)
    assert run.status == "failed" and run.output == ""
    assert run.error.startswith(
        "this worker refuses to run job code: job code would run as root (root)"
    )
    assert "SCHEDULER_ALLOW_ROOT=1" in run.error
    assert "this worker refuses to run job code" in live.log(queue)


def test_the_worker_s_files_are_closed_to_the_run_as_user(live):
    if identity.run_as().uid == os.geteuid():
        pytest.skip("job code runs as this user: nothing to close")
    base, var = Path(settings.BASE_DIR), Path(settings.VAR_DIR)
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (base, var)}
    assert modes == {base: 0o711, var: 0o711}
    closed = [base / "config", base / "scheduler_app", base / "workers", base / ".git"]
    if connection.vendor == "sqlite":
        closed.append(Path(connection.settings_dict["NAME"]))
    for private in closed:
        assert stat.S_IMODE(Path(private).stat().st_mode) & 0o077 == 0, private
