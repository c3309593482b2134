"""The schedule objects: each answers ``next_after(instant)`` and ``describe()``."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from cron_descriptor import Options, get_description
from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from scheduler_app.schedules import zones
from scheduler_app.schedules.zones import ScheduleError

CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter gives up after this many years without a match, so an impossible date
# such as 31 February is reported instead of searched for forever.
MAX_YEARS_BETWEEN_MATCHES = 8
# A per-second cron in the repeated hour of a fall-back can need this many steps.
_MAX_STEPS = 4000


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware, UTC), or None: never again."""

    def describe(self) -> str:
        """A sentence a person can check the schedule against."""


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression read on the wall clock of ``zone`` (see zones for DST).

    5 fields, or 6 with seconds first; names, lists, ranges, steps, ``L``, ``W``,
    ``#``, ``?``, and Jenkins' ``H`` (a value fixed per job, from ``seed``). When
    both day-of-month and day-of-week are restricted, a day matching either fires
    (the Vixie cron rule).
    """

    expression: str
    zone: ZoneInfo
    seed: str = ""  # resolves Jenkins-style H fields: the same job always gets the same value

    def __post_init__(self) -> None:
        check_cron(self.expression)

    def _iterate(self, start: datetime) -> croniter:
        return wall_croniter(self.expression, start, self.seed)

    def next_after(self, after: datetime) -> datetime | None:
        # Walk matching wall times; each resolves to an instant by the DST policy.
        # Resolved instants never decrease, so the first one after ``after`` is next.
        itr = self._iterate(zones.wall(after, self.zone))
        for _ in range(_MAX_STEPS):
            try:
                local = itr.get_next(datetime)
            except CroniterBadDateError:
                return None
            fire = zones.resolve(local, self.zone)
            if fire > after:
                return fire
        return None

    def describe(self) -> str:
        options = Options()
        options.use_24hour_time_format = True
        try:
            return str(get_description(CRON_ALIASES.get(self.expression, self.expression), options))
        except Exception:  # a description is a courtesy, never a failure
            return f"Cron {self.expression}"


def wall_croniter(expression: str, start: datetime, seed: str = "") -> croniter:
    return croniter(
        CRON_ALIASES.get(expression, expression),
        start,
        second_at_beginning=len(expression.split()) == 6,
        max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
        hash_id=seed.encode() or b"-",
    )


@lru_cache(maxsize=4096)
def check_cron(expression: str) -> None:
    """ScheduleError unless ``expression`` parses and ever fires. Cached: beat rebuilds
    each due job's schedule from Redis every tick, and a valid expression stays valid."""
    try:
        wall_croniter(expression, datetime(2000, 1, 1)).get_next(datetime)  # noqa: DTZ001 (wall time)
    except CroniterBadDateError as exc:
        raise ScheduleError(f"cron expression {expression!r} never fires.") from exc
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from exc


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds on a grid through ``anchor``; real time, so no DST effect."""

    seconds: int
    anchor: datetime
    label: str

    def next_after(self, after: datetime) -> datetime | None:
        if after < self.anchor:
            return self.anchor
        periods = math.floor((after - self.anchor).total_seconds() / self.seconds) + 1
        fire = self.anchor + timedelta(seconds=periods * self.seconds)
        # Float division can land one period short on an exact boundary.
        return fire if fire > after else fire + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"Every {self.label}"


@dataclass(frozen=True)
class OnceSchedule:
    at: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if after < self.at else None

    def describe(self) -> str:
        return f"Once, at {self.at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


@dataclass(frozen=True)
class ManualSchedule:
    def next_after(self, after: datetime) -> datetime | None:
        return None

    def describe(self) -> str:
        return "Manually"


@dataclass(frozen=True)
class UnionSchedule:
    """Several schedules at once; an instant two of them share fires once."""

    members: Sequence[Schedule]

    def next_after(self, after: datetime) -> datetime | None:
        fires = [fire for member in self.members if (fire := member.next_after(after))]
        return min(fires, default=None)

    def describe(self) -> str:
        first, *rest = (member.describe() for member in self.members)
        return "; and ".join([first, *(text[:1].lower() + text[1:] for text in rest)])


@dataclass(frozen=True)
class BoundedSchedule:
    """Only the fire times from ``start`` (inclusive) to ``end`` (inclusive)."""

    inner: Schedule
    start: datetime | None
    end: datetime | None

    def next_after(self, after: datetime) -> datetime | None:
        if self.start and after < self.start:
            after = self.start - timedelta(microseconds=1)
        fire = self.inner.next_after(after)
        return None if fire is None or (self.end and fire > self.end) else fire

    def describe(self) -> str:
        parts = [self.inner.describe()]
        if self.start:
            parts.append(f"from {_iso(self.start)}")
        if self.end:
            parts.append(f"until {_iso(self.end)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class JitteredSchedule:
    """Every fire time moved later by ``offset``, a fixed share of the jitter per job."""

    inner: Schedule
    offset: timedelta

    def next_after(self, after: datetime) -> datetime | None:
        fire = self.inner.next_after(after - self.offset)
        return None if fire is None else fire + self.offset

    def describe(self) -> str:
        return f"{self.inner.describe()} (+{self.offset.total_seconds():g} s jitter)"


def jitter_offset(jitter: int, seed: str) -> timedelta:
    """A deterministic offset in [0, jitter) seconds: the same job always gets the same one."""
    digest = hashlib.sha256(seed.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % jitter)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
