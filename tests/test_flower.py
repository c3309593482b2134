"""Flower runs only behind a login, and no worker tells it a URL's password."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.conf import settings

from config.celery import mask_passwords
from scheduler_app.embedded_redis import free_port
from scheduler_app.management.commands.runstack import Command
from tests.helpers import CELERY, wait_for


def status(url: str, login: str | None = None) -> int:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture
def flower(tmp_path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "REDIS_URL": settings.REDIS_URL}
    env["FLOWER_BASIC_AUTH"] = "watcher:flower-secret-1"
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [*CELERY, "flower", "--address=127.0.0.1", f"--port={port}", "--enable_events=False"],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: status(url + "/healthcheck"), timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_flower_wants_its_login(flower):
    for page in ("/", "/workers", "/broker", "/api/workers"):
        assert status(flower + page) == 401, page
        assert status(flower + page, "watcher:wrong") == 401, page
    assert status(flower + "/", "watcher:flower-secret-1") == 200


def test_make_run_makes_flowers_password_once_and_keeps_it(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    command = Command(stdout=io.StringIO())
    login = command.flower_login()
    user, password = login.split(":")
    assert user == "admin" and len(password) >= 16
    saved = tmp_path / "flower-password.txt"
    assert saved.read_text().strip() == password
    assert saved.stat().st_mode & 0o777 == 0o600
    assert password in command.stdout.getvalue()
    assert command.flower_login() == login  # the next run: the same
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:chosen")
    assert command.flower_login() == "ops:chosen"


SHOW_CONF = """
from types import SimpleNamespace
from celery.worker.control import Panel
from config.celery import app
state = SimpleNamespace(app=app)
print(Panel.data["conf"](state)["CELERY_BROKER_URL"])
for command in ("conf", "dump_conf", "report"):
    shown = str(Panel.data[command](state))
    print(command, "broker-secret" in shown or "hook-secret" in shown or "SECRET_KEY" in shown)
print("unmasked", "broker-secret" in app.bugreport())
"""


def test_a_workers_conf_and_report_mask_every_urls_password():
    env = {**os.environ, "DEBUG": "1", "REDIS_URL": "redis://:broker-secret@10.0.0.5:6379/0",
           "SCHEDULER_ADMIN_WEBHOOK": "https://hooks.example.com/services/hook-secret"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", SHOW_CONF], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split("\n")[:5] == [
        "redis://:********@10.0.0.5:6379/0",
        "conf False",
        "dump_conf False",
        "report False",
        "unmasked True",  # what Celery's own report showed
    ], result.stderr
    assert mask_passwords(["postgres://u:p@h/d", "http://h/x@y"]) == [
        "postgres://u:********@h/d",
        "http://h/x@y",
    ]
