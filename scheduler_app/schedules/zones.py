"""Time zones, and the one place that turns a wall-clock time into an instant.

The DST policy, for every calendar schedule (cron, hourly, daily, weekly,
monthly, a naive one-time instant):

- a wall time that does not exist (skipped by a spring-forward) fires once, at
  the first instant after the gap (02:30 on a New York spring-forward day fires
  at 03:00 EDT);
- a wall time that happens twice (repeated by a fall-back) fires once, at its
  first occurrence (01:30 on a New York fall-back day fires at 01:30 EDT, not
  again at 01:30 EST).

Intervals count real elapsed seconds and never look at wall clocks.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says what is wrong."""


# Names the zone database on a host may hold that are no place's time: the host's own
# zone (its meaning differs from machine to machine), and placeholders.
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


def get_zone(name: str) -> ZoneInfo:
    """The zone called ``name``, as stored; ScheduleError when there is none.

    For reading a saved job. What a job may be given is :func:`check_zone_name`'s.
    """
    if not isinstance(name, str) or name not in _zone_names():
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'.")
    return ZoneInfo(name)


def check_zone_name(name: str) -> str:
    """``name`` if it is an IANA zone a job may use; ScheduleError otherwise.

    Not ``localtime`` (whatever the host's clock is), ``Factory`` or ``posixrules``:
    a job's times must mean the same on every node.
    """
    if isinstance(name, str) and name in NOT_PLACES:
        raise ScheduleError(
            f"{name!r} is not an IANA time zone of a place; use a name such as 'Europe/Paris'."
        )
    get_zone(name)
    return name


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # available_timezones() walks the zone database on disk: tens of ms a call.
    return frozenset(available_timezones()) | {"UTC"}


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of ``instant`` in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def exists(local: datetime, zone: ZoneInfo) -> bool:
    """Whether the naive wall time ``local`` happens at all in ``zone``."""
    return wall(local.replace(tzinfo=zone).astimezone(UTC), zone) == local


def is_ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    """Whether the naive wall time ``local`` happens twice in ``zone``."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return first != second and exists(local, zone)


def resolve(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which the wall time ``local`` fires, by the DST policy above."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall(first, zone) == local:
        return first
    return _gap_end(local, zone)


def _gap_end(local: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the DST gap that swallowed ``local``.

    fold=1 reads ``local`` with the offset after the transition (an instant before
    the gap), fold=0 with the offset before it (an instant after the gap); the
    transition lies between, found to the second by bisection.
    """
    low = math.floor(local.replace(tzinfo=zone, fold=1).timestamp())
    high = math.ceil(local.replace(tzinfo=zone, fold=0).timestamp())
    return datetime.fromtimestamp(offset_change(low, high, zone), UTC)


def offset_change(low: int, high: int, zone: ZoneInfo) -> int:
    """The first second (a POSIX timestamp) after ``low`` whose UTC offset in ``zone``
    differs from ``low``'s, found by bisection; one change lies in (low, high]."""
    before = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high
