"""The beat leader killed (SIGKILL) with a standby running: the standby takes the lock
when it expires and every slot is fired once."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from scheduler_app.models import Run
from tests.helpers import create_job, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
EVERY = timedelta(seconds=2)


def test_a_standby_beat_takes_over_and_fires_every_slot_once(live, api, figures, settings):
    live.start("beat2", ["beat", "-l", "info"])  # waits for the lock: the standby
    try:
        job = create_job(
            api, name="steady", payload={"command": "true"}, schedule="every 2 seconds"
        )
        wait_runs(job["id"], 2, timeout=30)
        live.stop("beat", sig=signal.SIGKILL)
        killed_at = datetime.now(UTC)
        started = time.monotonic()

        wait_runs(job["id"], 1, timeout=60, scheduled_for__gt=killed_at)
        recovered = time.monotonic() - started
        wait_runs(job["id"], 3, timeout=30, scheduled_for__gt=killed_at)
    finally:
        live.stop("beat2")

    runs = list(Run.objects.filter(job_id=job["id"]).order_by("scheduled_for"))
    slots = [runs[0].scheduled_for + n * EVERY for n in range(len(runs))]
    assert [r.scheduled_for for r in runs] == slots  # one run for every slot, no slot without
    wait_runs(job["id"], len(runs), timeout=30, finished_at__isnull=False)
    ended = Run.objects.filter(id__in=[r.id for r in runs])
    completed = ended.filter(status=Run.Status.SUCCEEDED).count()
    # Slots late at the takeover start together; forbid skips all but one, with the reason.
    skipped = ended.filter(status=Run.Status.SKIPPED).count()
    lost = len(runs) - completed - skipped
    assert recovered < settings.CELERY_REDBEAT_LOCK_TIMEOUT + 10
    figures("beat leader SIGKILL, standby running", slots_due=len(slots),
            runs_completed=completed, skipped_by_forbid=skipped, doubled=0, lost=lost,
            time_to_recover=f"{recovered:.1f} s")  # fmt: skip
    assert lost == 0
