"""Rebuild every RedBeat entry from the Job table (after a Redis flush, say)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from scheduler_app import redbeat


class Command(BaseCommand):
    help = "Rebuild the RedBeat schedule in Redis from the jobs in the database."

    def handle(self, *args: Any, **options: Any) -> None:
        saved, removed = redbeat.reconcile()
        self.stdout.write(
            self.style.SUCCESS(f"Schedules in sync: {saved} job entries saved, {removed} removed.")
        )
