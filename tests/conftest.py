"""Fixtures: one world of users with their API clients, and the real stack.

The world: ``owner`` makes the jobs (with the code right, scheduler_app.run_code, so
command jobs too); ``teammate`` works beside them (``team`` puts both in one team:
the owner its admin, the teammate an editor; a job not in the team stays the owner's
alone); ``outsider`` must never see or touch the owner's rows. tests/world.py holds
the fuller world of roles (``world``) that the permission tests use. The stack's
processes (a Celery worker and beat on a private Redis) read the same test database
as the tests, so tests that use it are transactional and the SQLite test database is
a file (config/settings.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import IntegrityError
from rest_framework.test import APIClient

from scheduler_app import identity, teams
from scheduler_app.models import Job, Team
from tests.helpers import (
    Stack,
    WebhookRecorder,
    client_for,
    grant_run_code,
    test_database_url,
)
from tests.world import world  # noqa: F401  (a fixture)

LOOPBACK_ALLOWED = "127.0.0.1"  # SCHEDULER_HTTP_ALLOW in the tests, and in the stack


@pytest.fixture
def owner(db):
    return grant_run_code(
        get_user_model().objects.create_user("alice", password="alice-password-1")
    )


@pytest.fixture
def teammate(db):
    return get_user_model().objects.create_user("carol", password="carol-password-1")


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def team(owner, teammate) -> Team:
    """The owner's team (the owner its admin), the teammate an editor in it."""
    made = teams.create_team("ops", owner)
    teams.add_member(made, teammate, "editor")
    return made


@pytest.fixture
def api(owner) -> APIClient:
    """The owner's API client (token auth)."""
    return client_for(owner)


@pytest.fixture
def teammate_api(teammate) -> APIClient:
    return client_for(teammate)


@pytest.fixture
def outsider_api(outsider) -> APIClient:
    return client_for(outsider)


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


@pytest.fixture(scope="session")
def webhooks() -> Iterator[WebhookRecorder]:
    """Where the stack's webhooks go: the admins' at /admin, a test's at a path of its own."""
    recorder = WebhookRecorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory, webhooks) -> Iterator[Stack]:
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
            # Losses and lost messages found in seconds, not minutes.
            "SCHEDULER_HEARTBEAT_TIMEOUT": "5",
            "REAP_EVERY": "2",
            "SCHEDULER_REQUEUE_AFTER": "10",
            # Nodes refresh their row (and register again after a test's flush) often.
            "SCHEDULER_NODE_DB_EVERY": "1",
            # Alerts checked every second; beat down after 5 s without a fire.
            "SCHEDULER_ALERT_CHECK_EVERY": "1",
            "SCHEDULER_DOWN_AFTER": "5",
            "SCHEDULER_ADMIN_WEBHOOK": webhooks.url + "/admin",
            # The tests' HTTP servers and webhook recorders listen on 127.0.0.1, which
            # the egress guard refuses unless allowed; 127.0.0.2 and the rest stay refused.
            "SCHEDULER_HTTP_ALLOW": LOOPBACK_ALLOWED,
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A stack test that fails shows the last lines of each process's log, so a failure
    seen only in CI says what beat and the workers were doing."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    stack = funcargs.get("live") or funcargs.get("stack")
    if report.failed and call.when == "call" and isinstance(stack, Stack):
        for log in sorted(stack.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-STACK_LOG_LINES:]
            report.sections.append((f"stack log {log.name} (last lines)", "\n".join(tail)))
    return report


STACK_LOG_LINES = 25


@pytest.fixture
def job_tmp_path() -> Iterator[Path]:
    """A directory that job code may write in. Jobs run as SCHEDULER_RUN_AS (``nobody``
    when the tests run as root), who cannot enter pytest's ``tmp_path`` (0700): files a
    job writes here are owned by that user."""
    path = Path(tempfile.mkdtemp(prefix="cronfleet-test-"))
    who = identity.run_as()
    os.chown(path, who.uid, who.gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
def fresh_cache() -> None:
    """Throttle counts and login failures start from nothing in every test: the cache is
    the session's Redis (clear() deletes only the cache's own keys, not the stack's)."""
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def loopback_egress_allowed(settings) -> None:
    """The test process allows 127.0.0.1 too (jobs and webhooks aimed at the tests'
    loopback servers are made here), as the stack's processes do."""
    settings.SCHEDULER_HTTP_ALLOW = [LOOPBACK_ALLOWED]
