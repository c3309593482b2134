"""What the tests share besides fixtures: waiting, making jobs, reading runs, the stack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.celery import app
from scheduler_app.models import Job, Run

CELERY = [sys.executable, "-m", "celery", "-A", "config"]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {condition.__doc__ or condition}")


def make_job(owner: AbstractBaseUser, **fields: Any) -> Job:
    """A job saved straight to the database (no API): a command every minute unless told."""
    defaults = {
        "name": "j",
        "payload": {"command": "true"},
        "schedule": {"type": "interval", "every": 1, "unit": "minutes"},
    }
    return Job.objects.create(owner=owner, **{**defaults, **fields})


def files_stored_in(settings: Any, location: Path) -> Path:
    """Uploaded files go to ``location`` (a test's own directory) for this test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    return location


def grant_run_code(user: Any) -> Any:
    """The user, given the code right (scheduler_app.run_code), fresh from the database
    (Django caches a user's permissions on the object)."""
    user.user_permissions.add(Permission.objects.get(codename="run_code"))
    return type(user).objects.get(pk=user.pk)


def client_for(user: AbstractBaseUser) -> APIClient:
    """An API client that sends the user's token, as the CLI and scripts do."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def create_job(api: Any, **fields: Any) -> dict:
    """A job made through the API, as a user would; its JSON."""
    response = api.post("/api/v1/jobs/", fields, format="json")
    assert response.status_code == 201, response.data
    return response.data


def manual_job(api: Any, name: str, command: str, **fields: Any) -> dict:
    """A job that runs a shell command when asked to (schedule "manual"), made through the API."""
    return create_job(api, name=name, payload={"command": command}, schedule="manual", **fields)


def run_now(api: Any, job: dict) -> int:
    """Ask for a run of the job now, as the API's "run" button does; the run's id."""
    response = api.post(f"/api/v1/jobs/{job['id']}/run/")
    assert response.status_code == 202, response.data
    return response.data["id"]


def wait_runs(job_id: int, count: int, timeout: float = 30, **filters: Any) -> list[Run]:
    """At least ``count`` runs of the job matching ``filters``, oldest first."""

    def enough() -> list[Run] | None:
        """enough runs are recorded"""
        runs = list(
            Run.objects.filter(job_id=job_id, **filters).order_by("scheduled_for", "attempt")
        )
        return runs if len(runs) >= count else None

    try:
        return wait_for(enough, timeout=timeout)
    except AssertionError as exc:  # say what there was instead, for a failure seen in CI
        seen = Run.objects.filter(job_id=job_id).order_by("id")
        found = [(r.id, r.status, r.trigger, r.worker, r.error[:80]) for r in seen]
        raise AssertionError(
            f"{exc}; wanted {count} with {filters}; the job's runs: {found}"
        ) from None


def processes_running(*cmdline: str) -> list[psutil.Process]:
    """The processes on this machine whose command line is exactly ``cmdline``."""
    return [
        proc for proc in psutil.process_iter(["cmdline"]) if proc.info["cmdline"] == list(cmdline)
    ]


def test_database_url() -> str:
    """The test database, as a URL the stack's processes can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@dataclass
class Stack:
    """A real worker and a real beat, started as a user would, logging under ``logs``."""

    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], wrap: Sequence[str] = (), **env: str) -> None:
        """Start ``celery args``; ``wrap`` goes before it (a command that execs the rest,
        e.g. one that gives the process a mount namespace of its own)."""
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*wrap, *CELERY, *args], env={**self.env, **env}, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def start_worker(
        self, name: str = "worker", node: str = "w1", queues: str = "default",
        wrap: Sequence[str] = (), **env: str,
    ) -> None:  # fmt: skip
        self.start(name, ["worker", "-n", f"{node}@%h", "-Q", queues, "-c", "2", "-l", "info",
                          "--without-mingle", "--without-gossip"], wrap, **env)  # fmt: skip

    def start_beat(self) -> None:
        self.start("beat", ["beat", "-l", "info"])

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def wait_workers(self, count: int = 1) -> None:
        def workers_answer() -> bool:
            """the workers answer a ping"""
            return len(app.control.ping(timeout=0.5)) >= count

        wait_for(workers_answer, timeout=60)


class WebhookRecorder:
    """An HTTP server on loopback that records the JSON body of every POST, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.received.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path: str) -> list[dict]:
        return [body for where, body in self.received if where == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
