"""What a fault test counts: every slot of its jobs, by what the database recorded and by
what really ran (a ledger file the job's command appends to as it completes).

A *slot* is one (job, scheduled time): a fire time of a schedule, or one "run now". Its
attempts (retries) share it. A slot is *completed* when a run of it succeeded, *doubled*
when its command completed more than once (or two runs of it succeeded), *stuck* when a
run of it is still queued, waiting or running after everything should have ended, and
*lost* when it ended without success, was never recorded (a fire time with no run), or
its command completed but the database never heard of it.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from scheduler_app.models import Run
from tests.helpers import wait_for


class Ledger:
    """A file the jobs' commands append a line to as they complete: the truth of what ran,
    written outside the database."""

    def __init__(self, path: Path) -> None:
        """``path`` in a directory the jobs may write in (the ``job_tmp_path`` fixture): the
        file gets that directory's owner, the user jobs run as."""
        self.path = path
        path.touch()
        owner = path.parent.stat()
        os.chown(path, owner.st_uid, owner.st_gid)

    def command(self, body: str = "true") -> str:
        """``body``, then one line naming the run's slot, only if ``body`` succeeded."""
        return f'{body} && echo "$SCHEDULER_JOB_ID $SCHEDULER_SCHEDULED_FOR" >> {self.path}'

    def completions(self) -> Counter[tuple[int, str]]:
        lines = self.path.read_text().split("\n")
        return Counter(
            (int(job), when) for job, _, when in (line.partition(" ") for line in lines) if when
        )


@dataclass
class Figures:
    slots: int
    completed: int
    doubled: int
    lost: int
    stuck: int
    reaped: int  # attempts recorded ``lost`` (their worker died), each retried or counted lost

    def numbers(self, slots: str = "slots_due") -> dict[str, int]:
        """For the ``figures`` fixture; ``slots`` names what was counted (or runs_started)."""
        return {slots: self.slots, "runs_completed": self.completed, "runs_doubled": self.doubled,
                "runs_lost": self.lost, "runs_left_running_or_queued": self.stuck,
                "attempts_marked_lost": self.reaped}  # fmt: skip


def settle(job_ids: list[int], timeout: float = 30) -> bool:
    """Wait (bounded) until no run of the jobs is queued, waiting or running."""
    pending = Run.objects.filter(job_id__in=job_ids, status__in=Run.PENDING)
    return within(lambda: not pending.exists(), timeout) is not None


def count(job_ids: list[int], ledger: Ledger, every: dict[int, timedelta] | None = None) -> Figures:
    """The figures of the jobs' slots. ``every`` gives the interval of the scheduled jobs:
    each fire time between their first and last recorded slot must have a run."""
    runs = Run.objects.filter(job_id__in=job_ids, parent__isnull=True).order_by("scheduled_for")
    slots: dict[tuple[int, datetime], list[Run]] = defaultdict(list)
    for run in runs:
        slots[(run.job_id, run.scheduled_for)].append(run)
    missing = 0
    for job_id, interval in (every or {}).items():
        times = sorted(when for job, when in slots if job == job_id)
        if times:
            expected = (times[-1] - times[0]) // interval + 1
            missing += expected - len(times)
    ran = ledger.completions()
    completed = doubled = stuck = lost = 0
    for (job_id, when), attempts in slots.items():
        succeeded = sum(run.status == Run.Status.SUCCEEDED for run in attempts)
        if any(run.status in Run.PENDING for run in attempts):
            stuck += 1
        elif succeeded:
            completed += 1
        else:  # ended without success (a command that completed counts too: unrecorded)
            lost += 1
        if succeeded > 1 or ran.get((job_id, when.isoformat()), 0) > 1:
            doubled += 1
    reaped = runs.filter(status=Run.Status.LOST).count()
    return Figures(len(slots) + missing, completed, doubled, lost + missing, stuck, reaped)


def within(condition: Callable[[], object], timeout: float) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout``: a
    fault's figures are recorded whatever happened, then asserted."""
    started = time.monotonic()
    try:
        wait_for(condition, timeout=timeout)
    except AssertionError:
        return None
    return time.monotonic() - started


def seconds(took: float | None) -> str:
    return "never" if took is None else f"{took:.1f} s"


def reap_bound(env: dict[str, str]) -> float:
    """How long after its last heartbeat a dead run is recorded lost, at most: the heartbeat
    timeout, then two sweeps (the first only suspects it), with room for a busy machine."""
    return int(env["SCHEDULER_HEARTBEAT_TIMEOUT"]) + 3 * int(env["REAP_EVERY"]) + 3
