"""The schedule objects: each answers ``next_after(instant)`` and ``describe()``."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, CroniterError, croniter

from scheduler_app.schedules import zones
from scheduler_app.schedules.limits import HORIZON
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
# such as 31 February is reported instead of searched for forever. 40 is the longest
# gap a possible expression has: 29 February on one weekday (0 0 29 2 */7), across
# 2100, which is not a leap year.
MAX_YEARS_BETWEEN_MATCHES = 40
# Names croniter reads, and the values they stand for.
_MONTHS = {name: i for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
)}  # fmt: skip
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_RANGE = re.compile(r"^(\w+)-(\w+)(/\d+)?$")
_START_STEP = re.compile(r"^(\d+|[a-z]{3})/(\d+)$", re.IGNORECASE)
_QUARTZ_LAST_WEEKDAY = re.compile(r"^([0-7])l$", re.IGNORECASE)
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
    ``#``, ``?``, and Jenkins' ``H`` (a value fixed per job, from ``seed``). The day
    fields follow Vixie cron (see :func:`days_or`): a day must match both, unless
    neither starts with ``*`` or ``?``, and then a day matching either fires.
    """

    expression: str
    zone: ZoneInfo
    seed: str = ""  # resolves Jenkins-style H fields: the same job always gets the same value
    # The walk of the last call (its fire time, and the wall times after it): a call
    # for the fire time after that one goes on from there instead of starting again,
    # so a plan of many fire times parses the expression once, not once per fire time.
    _walk: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_cron(self.expression)

    def next_after(self, after: datetime) -> datetime | None:
        # Walk matching wall times; each resolves to an instant by the DST policy.
        # Resolved instants never decrease, so the first one after ``after`` is next,
        # and every one after the last fire time comes from a later wall time.
        # None at the horizon: no fire time past it is computed.
        if after >= HORIZON:
            return None
        if self._walk and self._walk["fire"] == after:  # the next one after the last
            matches = self._walk["matches"]
        else:
            matches = wall_times(self.expression, zones.wall(after, self.zone), self.seed)
        self._walk.clear()
        last_wall = zones.wall(HORIZON, self.zone)
        for local in itertools.islice(matches, _MAX_STEPS):
            if local >= last_wall:
                return None
            fire = zones.resolve(local, self.zone)
            if fire > after:
                if fire >= HORIZON:
                    return None
                self._walk.update(fire=fire, matches=matches)
                return fire
        return None

    def describe(self) -> str:
        return describe_cron(self.expression)


@lru_cache(maxsize=4096)
def describe_cron(given: str) -> str:
    """A cron expression in words; kept, as cron_descriptor reads its locale files anew
    for each description (about a millisecond: most of a page of jobs' time)."""
    options = Options()
    options.use_24hour_time_format = True
    expression = CRON_ALIASES.get(given, given)
    try:
        text = str(get_description(expression, options))
    except Exception:  # a description is a courtesy, never a failure
        return f"Cron {given}"
    # cron_descriptor says "or on Monday" whenever the day of the month is not a
    # plain *; ``*/2`` is unrestricted (days_or), so it is "only on Monday" then.
    return text if days_or(expression) else text.replace(", or on ", ", only on ")


def days_or(expression: str) -> bool:
    """Whether a day matching either day field fires; if not, it must match both.

    Vixie cron (and cronie, and cronsim) treats a day field whose text starts with
    ``*`` (``*``, ``*/2``) as unrestricted and ORs the two only when both are
    restricted, so ``0 0 */2 * 1`` is the Mondays that are odd days, and ``0 0 13 * 5``
    every 13th and every Friday. croniter ORs whenever neither field expands to every
    value, which reads the first as odd days or Mondays. ``?`` is our ``*``.
    """
    fields = expression.split()
    return not any(field.startswith(("*", "?")) for field in (fields[-3], fields[-1]))


def wall_times(expression: str, start: datetime, seed: str = "") -> Iterator[datetime]:
    """The naive wall times ``expression`` matches after ``start``, in order, while it fires."""
    expression = CRON_ALIASES.get(expression, expression)
    if len(expression.split()) not in (5, 6):
        raise ScheduleError("expected 5 fields, or 6 with seconds first.")
    parts = _union(_croniter_fields(expression), days_or(expression))
    matches = heapq.merge(*(_matches(_croniter(fields, start, seed)) for fields in parts))
    return (local for local, _ in itertools.groupby(matches))


def _union(fields: list[str], either: bool) -> list[list[str]]:
    """``fields`` as a union of expressions in which croniter only intersects the day fields.

    When a day matching ``either`` day field fires, one expression per field:
    croniter's own union drops a side that uses ``#``, ``W`` or ``L5``, or refuses
    it (``0 0 1 * L5``).
    """
    *times, month_day, month, weekday = fields
    month_days = _apart_from_last_day(month_day)
    if either:
        days = [(day, "*") for day in month_days] + [("*", weekday)]
    else:
        days = [(day, weekday) for day in month_days]
    return [[*times, day, month, week_day] for day, week_day in days]


def _apart_from_last_day(month_day: str) -> list[str]:
    """``L`` apart from the other days in the list: croniter counts it as one more
    value, so ``2-31,L`` would read as all 31 days, the 1st too."""
    items = month_day.split(",")
    others = [item for item in items if item.lower() != "l"]
    if not others or len(others) == len(items):
        return [month_day]
    return ["L", ",".join(others)]


def _croniter_fields(expression: str) -> list[str]:
    """The fields of ``expression`` in croniter's dialect, where it differs from ours.

    croniter reads a range with equal ends (``5-5``, ``mon-mon``, ``5-5/2``) as the
    whole field; ends a day-of-week ``a/n`` at 6 where the field, as in Vixie cron,
    ends at 7 (``7/1`` is Sunday, not every day); and writes Quartz's ``5L`` as ``L5``.
    """
    *fields, month, weekday = expression.split()
    weekdays = []
    for item in weekday.split(","):
        if last := _QUARTZ_LAST_WEEKDAY.match(item):
            item = f"L{last[1]}"
        elif start_step := _START_STEP.match(item):
            item = f"{start_step[1]}-7/{start_step[2]}"
        weekdays.append(item)
    return [
        *(_one_value_ranges(field, {}) for field in fields),
        _one_value_ranges(month, _MONTHS),
        _one_value_ranges(",".join(weekdays), _WEEKDAYS),
    ]


def _one_value_ranges(field: str, names: dict[str, int]) -> str:
    """``field`` with each range whose two ends are one value written as that value."""
    return ",".join(_one_value(item, names) for item in field.split(","))


def _one_value(item: str, names: dict[str, int]) -> str:
    span = _RANGE.match(item)
    if not span:
        return item
    first, last = (
        int(end) if end.isdigit() else names.get(end.lower()) for end in span.group(1, 2)
    )
    return span[1] if first is not None and first == last else item


def _croniter(fields: list[str], start: datetime, seed: str) -> croniter:
    return croniter(
        " ".join(fields),
        start,
        day_or=False,  # the day-field rule is days_or's
        second_at_beginning=len(fields) == 6,
        max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
        hash_id=seed.encode() or b"-",
    )


def _matches(itr: croniter) -> Iterator[datetime]:
    try:
        while True:
            yield itr.get_next(datetime)
    except CroniterBadDateError:
        return


@lru_cache(maxsize=4096)
def check_cron(expression: str) -> None:
    """ScheduleError unless ``expression`` parses and ever fires. Cached: beat rebuilds
    each due job's schedule from Redis every tick, and a valid expression stays valid."""
    try:
        first = next(wall_times(expression, datetime(2000, 1, 1)), None)  # noqa: DTZ001 (wall time)
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from exc
    if first is None:
        raise ScheduleError(f"cron expression {expression!r} never fires.")


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds on a grid through ``anchor``; real time, so no DST effect."""

    seconds: int
    anchor: datetime
    label: str

    def next_after(self, after: datetime) -> datetime | None:
        if self.anchor >= HORIZON or after >= HORIZON:
            return None
        if after < self.anchor:
            return self.anchor
        # Whole periods, in integers: exact, and never a timedelta past the horizon.
        period = timedelta(seconds=self.seconds)
        periods = (after - self.anchor) // period + 1
        if periods * self.seconds >= (HORIZON - self.anchor).total_seconds():
            return None
        return self.anchor + periods * period

    def describe(self) -> str:
        return f"Every {self.label}"


@dataclass(frozen=True)
class OnceSchedule:
    at: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if after < self.at < HORIZON else None

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
    # Each member's last answer (asked after, its fire time): still its answer for any
    # later instant before that fire time, so a step asks only the member that fired.
    _answers: dict[int, tuple[datetime, datetime | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def next_after(self, after: datetime) -> datetime | None:
        fires = []
        for index, member in enumerate(self.members):
            asked, fire = self._answers.get(index, (None, None))
            if asked is None or fire is None or not asked <= after < fire:
                fire = member.next_after(after)
                self._answers[index] = (after, fire)
            if fire is not None:
                fires.append(fire)
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
        return None if fire is None or fire + self.offset >= HORIZON else fire + self.offset

    def describe(self) -> str:
        return f"{self.inner.describe()} (+{self.offset.total_seconds():g} s jitter)"


def jitter_offset(jitter: int, seed: str) -> timedelta:
    """A deterministic offset in [0, jitter) seconds: the same job always gets the same one."""
    digest = hashlib.sha256(seed.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % jitter)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
