"""Every schedule form, parsed into objects that compute fire times.

This package is the only code that knows when a job fires (design rule 2): the
preview, the job's ``next_run_at`` and the schedule RedBeat evaluates in beat all
use it. :func:`normalize` turns what a user wrote into the canonical object
stored on the job; :func:`build` and :func:`fire_schedule` turn that into a
:class:`Schedule` with ``next_after`` and ``describe``; :class:`Timing` adds the
allowed window and exclusion calendars. DST policy: see :mod:`.zones`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler_app.schedules.advice import dst_warnings
from scheduler_app.schedules.beat_cache import FireTimes, beat_fire_times
from scheduler_app.schedules.forms import Schedule
from scheduler_app.schedules.limits import HORIZON, check_instant
from scheduler_app.schedules.parse import INTERVAL_UNITS, WEEKDAYS, normalize_value
from scheduler_app.schedules.timing import (
    MAX_PLAN_STEPS,
    PLAN_SECONDS,
    Budget,
    Decision,
    Timing,
    Window,
    build,
    fire_schedule,
    from_beat_params,
    instant,
    job_jitter,
    normalize_window,
)
from scheduler_app.schedules.zones import ScheduleError, check_zone_name, get_zone


def normalize(value: Any, zone: ZoneInfo, now: datetime | None = None) -> dict[str, Any]:
    """The canonical object for any accepted schedule value; ScheduleError otherwise.

    Builds the schedule to check it (a cron that never fires is an error) and
    refuses a one-time instant that is already past.
    """
    now = now or datetime.now(UTC)
    spec = normalize_value(value)
    members = spec["schedules"] if spec["type"] == "union" else [spec]
    for index, member in enumerate(members):
        place = f"schedule {index + 1} of the list: " if len(members) > 1 else ""
        try:
            build(member, zone, now)
        except ScheduleError as exc:
            raise ScheduleError(f"{place}{exc}") from exc
        if member["type"] == "once" and instant(member["at"], zone) <= now:
            raise ScheduleError(f"{place}'at' {member['at']} is in the past.")
    return spec


def upcoming(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after`` (fewer when the schedule ends)."""
    times: list[datetime] = []
    cursor = after
    while len(times) < count:
        fire = schedule.next_after(cursor)
        if fire is None:
            break
        times.append(fire)
        cursor = fire
    return times


__all__ = [
    "HORIZON",
    "INTERVAL_UNITS",
    "MAX_PLAN_STEPS",
    "PLAN_SECONDS",
    "UTC",
    "WEEKDAYS",
    "Budget",
    "Decision",
    "FireTimes",
    "Schedule",
    "ScheduleError",
    "Timing",
    "Window",
    "beat_fire_times",
    "build",
    "check_instant",
    "check_zone_name",
    "dst_warnings",
    "fire_schedule",
    "from_beat_params",
    "get_zone",
    "instant",
    "job_jitter",
    "normalize",
    "normalize_window",
    "upcoming",
]
