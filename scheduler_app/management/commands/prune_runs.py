"""Apply the run retention settings now (beat does it every PRUNE_EVERY seconds)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scheduler_app import retention


class Command(BaseCommand):
    help = (
        "Delete the finished runs past the retention settings (RUN_RETENTION_*), in batches; "
        "their counts and durations stay in the stats."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.BATCH_SIZE,
            help=f"Rows per transaction (default {retention.BATCH_SIZE}, "
            f"at most {retention.MAX_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, dry_run: bool, batch_size: int, **options: Any) -> None:
        if not 1 <= batch_size <= retention.MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be from 1 to {retention.MAX_BATCH_SIZE}.")
        for group, limit in retention.limits().items():
            days = f"{limit.days} days" if limit.days else "no age limit"
            count = f"newest {limit.per_job} per job" if limit.per_job else "no count limit"
            self.stdout.write(f"Keeping {group} runs: {days}, {count}.")
        report = retention.prune(batch_size, dry_run=dry_run, progress=self.progress)
        verb = "Would delete" if dry_run else "Deleted"
        batches = "" if dry_run else f" in {report.batches} batches"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} {report.total} runs{batches}: {report.describe()}.")
        )

    def progress(self, report: retention.Report) -> None:
        self.stdout.write(f"  batch {report.batches}: {report.total} runs deleted so far")
