"""A stack of its own for a fault that breaks what the session's stack shares: its own
Redis, and a web server, a beat and workers on it, started as a user would, each with
the environment it is given (a database behind a proxy, say). The test talks to its web
server over HTTP, so runs it asks for are sent through its own Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from scheduler_app.embedded_redis import EmbeddedRedis, free_port
from tests.helpers import Stack, wait_for


@dataclass
class Http:
    """The API over HTTP, with a user's token; answers are (status, JSON body, headers)."""

    base: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        request = urllib.request.Request(
            self.base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return (
                    response.status,
                    json.loads(response.read() or b"null"),
                    dict(response.headers),
                )
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw.decode(errors="replace")
            return error.code, data, dict(error.headers)

    def get(self, path: str) -> tuple[int, Any, dict]:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any, dict]:
        return self.call("POST", path, body)

    def create_job(self, **fields: Any) -> dict:
        status, data, _ = self.post("/api/v1/jobs/", fields)
        assert status == 201, data
        return data

    def run_now(self, job: dict) -> int:
        status, data, _ = self.post(f"/api/v1/jobs/{job['id']}/run/")
        assert status == 202, data
        return data["id"]


@dataclass
class OwnStack:
    """Processes of the session's ``Stack`` (so they log beside it and are stopped by pid),
    named ``own-*``, on a Redis of their own."""

    live: Stack
    redis: EmbeddedRedis
    env: dict[str, str] = field(default_factory=dict)  # for every process: DATABASE_URL ...
    web_port: int = 0

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def start_web(self) -> str:
        """A web server (Django's, single process) on a free loopback port; its URL."""
        self.web_port = free_port()
        log = (self.live.logs / "own-web.log").open("ab")
        env = {**self.live.env, "REDIS_URL": self.redis.url, **self.env}
        self.live.procs["own-web"] = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{self.web_port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
        )  # fmt: skip
        url = f"http://127.0.0.1:{self.web_port}"

        def answers() -> bool:
            """the web server answers"""
            try:
                urllib.request.urlopen(url + "/api/v1/health/", timeout=2).close()
            except urllib.error.HTTPError:
                return True  # a 503 is an answer
            except OSError:
                return False
            return True

        wait_for(answers, timeout=30)
        return url

    def start_beat(self) -> None:
        self.live.start("own-beat", ["beat", "-l", "info"], REDIS_URL=self.redis.url, **self.env)

    def start_worker(self, node: str, concurrency: int = 2, name: str = "own-worker") -> None:
        args = ["worker", "-n", f"{node}@%h", "-Q", "default", "-c", str(concurrency),
                "-l", "info", "--without-mingle", "--without-gossip"]  # fmt: skip
        self.live.start(name, args, REDIS_URL=self.redis.url, **self.env)

    def wait_workers(self, count: int = 1) -> None:
        probe = Celery("probe")  # the stack's Celery settings, on this Redis
        probe.config_from_object("django.conf:settings", namespace="CELERY")
        probe.conf.broker_url = self.redis.url
        try:

            def workers_answer() -> bool:
                """the stack's own workers answer a ping"""
                return len(probe.control.ping(timeout=0.5)) >= count

            wait_for(workers_answer, timeout=60)
        finally:
            probe.close()

    def stop_all(self) -> None:
        for name in [name for name in self.live.procs if name.startswith("own-")]:
            self.live.stop(name)
