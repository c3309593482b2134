"""Fire times at beat's speed: one schedule object per distinct schedule, and the fire
times it already computed remembered.

Beat and the reconcile ask ``next_after`` for thousands of entries whose schedules
are the same (``*/5 * * * *`` in UTC) at instants close together (the last boundary).
Building a schedule parses its cron expression, and a cron's first ``next_after``
builds croniter objects: about 0.3 ms, which at 100,000 jobs is half a minute. Here
each distinct schedule is built once, and :class:`FireTimes` keeps the run of
consecutive fire times it walked, so a later question inside that run is a bisection.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_right
from collections import OrderedDict
from datetime import datetime
from typing import Any

from scheduler_app.schedules.forms import Schedule
from scheduler_app.schedules.timing import from_beat_params

SCHEDULES_KEPT = 20_000  # distinct schedules; the least recently used is dropped past it
FIRES_KEPT = 512  # consecutive fire times one schedule remembers
WALK_STEPS = 64  # fire times walked forward before starting again from the instant asked


class FireTimes:
    """A schedule's ``next_after``, answered from the consecutive fire times it walked.

    ``_fires[0]`` is the first fire time after ``_after`` and each next one the first
    after the one before, so for any instant from ``_after`` to the last of them the
    answer is the first remembered fire time after it. Thread-safe: the web server's
    threads save entries too, and a cron schedule's walk is not.
    """

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self._lock = threading.Lock()
        self._after: datetime | None = None
        self._fires: list[datetime] = []
        self._ended = False  # no fire time after the last remembered one

    def next_after(self, after: datetime) -> datetime | None:
        with self._lock:
            if self._after is None or after < self._after:
                return self._restart(after)
            fires = self._fires
            walked = 0
            while not self._ended and fires[-1] <= after:
                if walked == WALK_STEPS or len(fires) >= FIRES_KEPT:
                    return self._restart(after)
                fire = self.schedule.next_after(fires[-1])
                if fire is None:
                    self._ended = True
                else:
                    fires.append(fire)
                    walked += 1
            index = bisect_right(fires, after)
            return fires[index] if index < len(fires) else None

    def _restart(self, after: datetime) -> datetime | None:
        fire = self.schedule.next_after(after)
        self._after, self._fires, self._ended = after, [fire] if fire else [], fire is None
        return fire

    def describe(self) -> str:
        return self.schedule.describe()


_cache: OrderedDict[tuple[Any, ...], FireTimes] = OrderedDict()
_cache_lock = threading.Lock()


def beat_fire_times(params: dict[str, Any]) -> FireTimes:
    """The shared fire times of a job's beat parameters (see ``Job.beat_params``)."""
    key = _key(params)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    built = FireTimes(from_beat_params(params))
    with _cache_lock:
        found = _cache.setdefault(key, built)
        if len(_cache) > SCHEDULES_KEPT:
            _cache.popitem(last=False)
    return found


def _key(params: dict[str, Any]) -> tuple[Any, ...]:
    """What decides the fire times: the anchor only for an interval (its grid), the
    job's seed only for a jitter or a cron ``H`` field (an upper-case H anywhere in the
    schedule counts, which is safe: it only shares less)."""
    spec = json.dumps(params["spec"], sort_keys=True)
    jitter = params.get("jitter") or 0
    anchor = params["anchor"] if '"interval"' in spec else None
    seed = params.get("seed") if jitter or "H" in spec else None
    return (spec, params["timezone"], anchor, params.get("start_at"), params.get("end_at"),
            jitter, seed)  # fmt: skip
