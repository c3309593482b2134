"""`make run`: the whole system in the foreground: Redis (unless REDIS_URL is set), web,
beat, a worker and Flower (behind a login), with their logs interleaved; Ctrl-C stops
them all."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager

from scheduler_app import encryption
from scheduler_app.embedded_redis import EmbeddedRedis, RedisNotFound


def write_secret(path: Path, secret: str) -> None:
    """Write a password to a file only its owner can read, from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there keeps its mode otherwise: narrow it first
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")


class Command(BaseCommand):
    help = "Run Redis (when REDIS_URL is unset), web, beat, a worker and Flower together."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
        parser.add_argument(
            "--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", 5555))
        )
        parser.add_argument(
            "--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", 6390))
        )
        parser.add_argument("--queues", default=os.environ.get("WORKER_QUEUES", "default"))

    def handle(self, *args: Any, **options: Any) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        redis = None
        if not os.environ.get("REDIS_URL"):
            redis = self.start_redis(options["redis_port"])
            env["REDIS_URL"] = redis.url
        self.ensure_admin()
        self.encryption_key_note()
        env["FLOWER_BASIC_AUTH"] = self.flower_login()
        try:
            self.run_all(env, options)
        finally:
            if redis is not None:
                redis.stop()

    def start_redis(self, port: int) -> EmbeddedRedis:
        self.stdout.write(
            f"Starting the embedded Redis on 127.0.0.1:{port} (data and its password in var/redis)"
        )
        try:
            return EmbeddedRedis.start(settings.VAR_DIR / "redis", port)
        except (RedisNotFound, RuntimeError) as exc:
            raise CommandError(
                f"{exc}\nIf port {port} is taken, set EMBEDDED_REDIS_PORT, or point REDIS_URL "
                "at a Redis you run yourself."
            ) from exc

    def ensure_admin(self) -> None:
        """On a fresh database, make an `admin` account and say where its password is."""
        users = get_user_model().objects
        if users.exists():
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "admin@localhost", password)
        path = settings.VAR_DIR / "admin-password.txt"
        write_secret(path, password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the user 'admin' with password {password} (saved in {path})."
            )
        )

    def encryption_key_note(self) -> None:
        """Secret env values are encrypted with SECRET_ENCRYPTION_KEY, or else with a key
        made here once and kept in var/ (mode 0600): say which, since losing it loses them."""
        if settings.SECRET_ENCRYPTION_KEY:
            self.stdout.write("Secret env values are encrypted with SECRET_ENCRYPTION_KEY.")
            return
        path = encryption.ensure_key_file()
        self.stdout.write(f"Secret env values are encrypted with the key in {path} (keep it).")

    def flower_login(self) -> str:
        """Flower's user:password: FLOWER_BASIC_AUTH, or the user `admin` with a password
        made on first use and kept in var/flower-password.txt. Flower never runs open."""
        if os.environ.get("FLOWER_BASIC_AUTH"):
            return os.environ["FLOWER_BASIC_AUTH"]
        path = settings.VAR_DIR / "flower-password.txt"
        password = path.read_text().strip() if path.exists() else ""
        if not password:
            password = secrets.token_urlsafe(12)
            write_secret(path, password)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Flower's login is 'admin' with password {password} (saved in {path})."
                )
            )
        return f"admin:{password}"

    def run_all(self, env: dict[str, str], options: dict[str, Any]) -> None:
        python, celery = sys.executable, f"{sys.executable} -m celery -A config"
        commands = {
            "web": f"{python} manage.py runserver 127.0.0.1:{options['web_port']} --noreload",
            "beat": f"{celery} beat -l info",
            "worker": f"{celery} worker -l info -n worker1@%h -Q {shlex.quote(options['queues'])}",
            "flower": f"{celery} flower --address=127.0.0.1 --port={options['flower_port']}",
        }
        manager = Manager()
        for name, command in commands.items():
            manager.add_process(name, command, env=env, cwd=str(settings.BASE_DIR))
        self.stdout.write(
            f"Web and admin: http://127.0.0.1:{options['web_port']}/admin/  "
            f"API docs: http://127.0.0.1:{options['web_port']}/api/docs/  "
            f"Flower: http://127.0.0.1:{options['flower_port']}/ (user admin, password in "
            f"var/flower-password.txt, unless FLOWER_BASIC_AUTH is set)   "
            "Ctrl-C stops everything."
        )
        self.stdout.write(self.egress_note())
        manager.loop()
        if manager.returncode:
            raise SystemExit(manager.returncode)

    @staticmethod
    def egress_note() -> str:
        """What `http` jobs and webhooks may reach, and how to let them reach this machine."""
        if allowed := settings.SCHEDULER_HTTP_ALLOW:
            return (
                "http jobs and webhooks may reach public addresses and "
                f"SCHEDULER_HTTP_ALLOW: {', '.join(allowed)}."
            )
        return (
            "http jobs and webhooks may reach public addresses only (no loopback, private "
            "or metadata address); to try them against this machine: "
            "SCHEDULER_HTTP_ALLOW=127.0.0.1,localhost make run"
        )
