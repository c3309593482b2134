"""Fixtures: users and API clients, and the real stack (Celery worker and beat on Redis).

The stack's processes read the same test database as the tests, so tests that
use it are transactional (their writes are committed where the worker sees
them) and the SQLite test database is a file (see config/settings.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from scheduler_app.models import Job

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


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def _test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Stack:
    """A real worker and a real beat, started as a user would, logging under ``logs``."""

    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            CELERY + args, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_worker(self, name: str = "worker", node: str = "w1", queues: str = "default") -> None:
        self.start(
            name,
            [
                "worker",
                "-n",
                f"{node}@%h",
                "-Q",
                queues,
                "-c",
                "2",
                "-l",
                "info",
                "--without-mingle",
                "--without-gossip",
            ],
        )

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
        from config.celery import app

        def workers_answer() -> bool:
            """the workers answer a ping"""
            return len(app.control.ping(timeout=0.5)) >= count

        wait_for(workers_answer, timeout=60)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
    logs = tmp_path_factory.mktemp("stack")
    env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    env["EMAIL_FILE_PATH"] = str(logs / "mail")
    stack = Stack(logs, env)
    stack.start_worker()
    stack.start_beat()
    try:
        stack.wait_workers()
        yield stack
    finally:
        for name in list(stack.procs):
            stack.stop(name)


@pytest.fixture
def live(stack: Stack, transactional_db, redis_client) -> Iterator[Stack]:
    """The stack, for one test; the jobs it made are deleted (and unscheduled) after it."""
    yield stack
    # Unschedule first, so beat and the worker stop making runs, then delete; a run
    # the worker was inserting at that moment makes the delete fail once: try again.
    for job in Job.objects.filter(enabled=True):
        job.enabled = False
        job.save()
    for attempt in range(5):
        try:
            for job in Job.objects.all():
                job.delete()
            break
        except IntegrityError:
            if attempt == 4:
                raise
            time.sleep(0.5)
    if "beat" not in stack.procs:  # a test stopped it
        stack.start_beat()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
