"""``manage.py unlock_login USERNAME``: lift an account's login lock and forget its
failures (anyone who knows a username can lock it by failing at it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from scheduler_app import login_guard


class Command(BaseCommand):
    help = "Lift the login lock of an account and forget its failed logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        was = login_guard.locked_for(username)
        login_guard.reset(username)
        state = f"was locked for {was} s more" if was else "was not locked"
        self.stdout.write(f"{username}: unlocked ({state}).")
