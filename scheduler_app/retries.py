"""Whether a run that ended badly is tried again, and after how long."""

from __future__ import annotations

import random
from dataclasses import dataclass

from scheduler_app.models import Job, Run

MAX_RETRY_DELAY = 24 * 3600


@dataclass(frozen=True)
class Retry:
    attempt: int
    countdown: float


def plan(job: Job, status: str, attempt: int) -> Retry | None:
    """The retry of a run of ``job`` that ended with ``status`` on ``attempt``, or None."""
    if status not in Run.FAILURES or attempt > job.max_retries:
        return None
    return Retry(attempt=attempt + 1, countdown=delay(job, attempt))


def delay(job: Job, attempt: int, spread: float | None = None) -> float:
    """Seconds before the retry of ``attempt``: fixed, or with ``retry_backoff`` doubling
    each time, capped at a day, less up to 20 % jitter so retries of many runs spread out."""
    if not job.retry_backoff:
        return float(min(job.retry_delay, MAX_RETRY_DELAY))
    base = min(job.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
    spread = random.random() if spread is None else spread
    return base * (1 - 0.2 * spread)
