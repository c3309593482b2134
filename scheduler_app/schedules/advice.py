"""Warnings about what users trip on: DST days, and schedules that never run."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler_app.schedules import zones
from scheduler_app.schedules.forms import wall_times
from scheduler_app.schedules.limits import HORIZON
from scheduler_app.schedules.parse import parse_instant
from scheduler_app.schedules.timing import calendar_to_cron

MAX_WARNINGS = 10
# DST changes are looked for this far ahead at most, however far the fire times go.
MAX_WARNING_SPAN = timedelta(days=5 * 366)


def dst_warnings(spec: dict[str, Any], zone: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """One warning per DST change in [start, end] (at most MAX_WARNING_SPAN ahead) that
    moves or drops a wall-clock fire time."""
    end = min(end, start + MAX_WARNING_SPAN, HORIZON - timedelta(days=2))
    found: list[str] = []
    for day in transition_days(zone, start, end):
        for expression in _wall_clock_crons(spec):
            found.extend(_day_warnings(expression, zone, day))
    for member in _members(spec):
        if member["type"] == "once":
            found.extend(_once_warning(member["at"], zone))
    return found[:MAX_WARNINGS]


def transition_days(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Local midnights of the days on which ``zone`` changes its UTC offset."""
    days = []
    day = datetime.combine(zones.wall(start, zone).date(), time())
    last = zones.wall(end, zone)
    while day <= last:
        morning = zones.resolve(day, zone)
        evening = zones.resolve(day + timedelta(hours=23, minutes=59), zone)
        if morning.astimezone(zone).utcoffset() != evening.astimezone(zone).utcoffset():
            days.append(day)
        day += timedelta(days=1)
    return days


def _members(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["schedules"] if spec["type"] == "union" else [spec]


def _wall_clock_crons(spec: dict[str, Any]) -> list[str]:
    crons = []
    for member in _members(spec):
        if member["type"] == "cron":
            crons.append(member["expression"])
        elif member["type"] in ("hourly", "daily", "weekly", "monthly"):
            crons.append(calendar_to_cron(member))
    return crons


def changed_wall_span(zone: ZoneInfo, day: datetime) -> tuple[datetime, datetime]:
    """The wall times [first, end) that the DST change on ``day`` skips or repeats.

    The change's instant is found to the second (:func:`zones.offset_change`); the
    wall times between the old and the new offset's reading of it are the gap (clocks
    go forward) or the repeated span (clocks go back).
    """
    low = math.floor(zones.resolve(day, zone).timestamp())
    high = math.ceil(zones.resolve(day + timedelta(hours=23, minutes=59), zone).timestamp())
    before = datetime.fromtimestamp(low, zone).utcoffset()
    high = zones.offset_change(low, high, zone)
    change = datetime.fromtimestamp(high, UTC).replace(tzinfo=None)
    after = datetime.fromtimestamp(high, zone).utcoffset()
    if before is None or after is None:
        return day, day + timedelta(days=1)
    first, end = sorted((change + before, change + after))
    return first, end


def _day_warnings(expression: str, zone: ZoneInfo, day: datetime) -> list[str]:
    """Only the wall times the change touches are walked: at most an hour or two of
    them, even for a cron that fires every second."""
    missing, doubled = [], []
    first, end = changed_wall_span(zone, day)
    for local in itertools.islice(wall_times(expression, first - timedelta(seconds=1)), 10_000):
        if local >= end:
            break
        if not zones.exists(local, zone):
            missing.append(local)
        elif zones.is_ambiguous(local, zone):
            doubled.append(local)
    warnings = []
    if missing:
        runs_at = zones.resolve(missing[0], zone).astimezone(zone)
        warnings.append(
            f"On {day:%Y-%m-%d} {_times(missing)} does not exist in {zone.key} (clocks go "
            f"forward): it runs once, at {runs_at:%H:%M} {runs_at:%Z}, the first instant after."
        )
    if doubled:
        first = zones.resolve(doubled[0], zone).astimezone(zone)
        warnings.append(
            f"On {day:%Y-%m-%d} {_times(doubled)} happens twice in {zone.key} (clocks go "
            f"back): it runs once, at the first ({first:%Z})."
        )
    return warnings


def _once_warning(value: str, zone: ZoneInfo) -> list[str]:
    local = parse_instant(value)
    if local.tzinfo is not None:
        return []
    if not zones.exists(local, zone):
        runs_at = zones.resolve(local, zone).astimezone(zone)
        return [
            f"{local:%Y-%m-%d %H:%M} does not exist in {zone.key}: it runs at "
            f"{runs_at:%H:%M} {runs_at:%Z}, the first instant after."
        ]
    if zones.is_ambiguous(local, zone):
        return [f"{local:%Y-%m-%d %H:%M} happens twice in {zone.key}: it runs at the first."]
    return []


def _times(moments: list[datetime]) -> str:
    if len(moments) == 1:
        return f"{moments[0]:%H:%M:%S}".removesuffix(":00")
    return f"{len(moments)} fire times ({moments[0]:%H:%M}-{moments[-1]:%H:%M})"
