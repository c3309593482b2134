"""Start a private Redis before Django reads its settings, so REDIS_URL points at it.

Loaded with ``-p tests.redis_plugin`` (pyproject addopts): pytest-django sets
Django up while the initial conftests load, which is too late for a conftest to
change the environment. The private Redis has a password, as every deployment's
does (scheduler_app/embedded_redis.py), so a job the stack runs cannot send the
workers tasks; REDIS_URL carries it. ``TEST_REDIS_URL`` uses a running Redis
instead; the tests flush it, so never point it at one that holds anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from scheduler_app.embedded_redis import EmbeddedRedis, free_port

_SERVER = pytest.StashKey[EmbeddedRedis]()


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser, args):  # type: ignore[no-untyped-def]
    if os.environ.get("TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="scheduler-test-redis-"))
        server = EmbeddedRedis.start(data_dir, free_port(), persist=False)
        early_config.stash[_SERVER] = server
        os.environ["REDIS_URL"] = server.url
    os.environ.setdefault("DEBUG", "1")
    # The test run's own key for secret env values; the stack's processes inherit it.
    os.environ.setdefault("SECRET_ENCRYPTION_KEY", Fernet.generate_key().decode())
    result = yield
    # The SQLite test database is a file under VAR_DIR, which settings never create.
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    return result


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()
