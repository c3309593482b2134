"""Every schedule form, parsed into one object that computes fire times.

This is the only module that knows when a job fires. The preview endpoint, the
job's ``next_run_at`` and the schedule RedBeat evaluates in beat all build a
schedule with :func:`build` and call ``next_after``, so what the user is shown
is what runs.

A schedule is given as a string (``"*/5 * * * *"``, ``"@daily"``, ``"every 30
seconds"``, ``"daily at 10:30"``, ``"monday at 09:00"``, ``"manual"``) or an
object (``{"type": "cron", "expression": ...}``, ``interval``, ``once``,
``daily``, ``weekly``, ``monthly``, ``hourly``, ``manual``). :func:`normalize`
turns either into the canonical object stored on the job; :func:`build` turns
the canonical object into a :class:`Schedule`.

Cron and calendar times are wall-clock times in the job's IANA time zone;
``next_after`` takes and returns aware datetimes (returned in UTC).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, available_timezones

from cron_descriptor import Options, get_description
from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says what is wrong."""


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware, UTC), or None: never again."""

    def describe(self) -> str:
        """A sentence a person can check the schedule against."""


INTERVAL_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter gives up after this many years without a match: an impossible date
# such as 31 February is reported instead of searched for forever.
_MAX_YEARS_BETWEEN_MATCHES = 8


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ScheduleError when there is none."""
    if not isinstance(name, str) or name not in _zone_names():
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'.")
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # available_timezones() walks the zone database on disk: tens of ms a call.
    return frozenset(available_timezones()) | {"UTC"}


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression evaluated in a time zone (5 fields, or 6 with seconds first)."""

    expression: str
    zone: ZoneInfo

    def __post_init__(self) -> None:
        validate_cron(self.expression, self.zone)

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def next_after(self, after: datetime) -> datetime | None:
        start = after.astimezone(self.zone)
        itr = croniter(
            self.expression,
            start,
            second_at_beginning=self.has_seconds,
            max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
        )
        try:
            fire = itr.get_next(datetime)
        except CroniterBadDateError:
            return None
        return fire.astimezone(UTC)

    def describe(self) -> str:
        return describe_cron(self.expression)


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds, on a grid anchored at ``anchor`` (unaffected by DST).

    The first fire is ``anchor`` itself when the schedule names a start, else one
    period after the moment the schedule took effect.
    """

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


def validate_cron(expression: str, zone: ZoneInfo) -> None:
    fields = expression.split()
    if expression.strip().lower() not in CRON_ALIASES and len(fields) not in (5, 6):
        raise ScheduleError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 (seconds first)."
        )
    try:
        itr = croniter(
            expression,
            datetime.now(zone),
            second_at_beginning=len(fields) == 6,
            max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
        )
        itr.get_next(datetime)
    except CroniterBadDateError as exc:
        raise ScheduleError(f"cron expression {expression!r} never fires.") from exc
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from exc


def describe_cron(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(get_description(CRON_ALIASES.get(expression, expression), options))
    except Exception:  # a description is a courtesy, never a failure
        return f"Cron {expression}"


# --- parsing -----------------------------------------------------------------

_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_EVERY_RE = re.compile(r"^every\s+(?:(\d+)\s+)?(second|minute|hour|day|week)s?$")
_AT_RE = re.compile(r"^(\w+)\s+at\s+(\S+)$")


def normalize(value: Any, zone: ZoneInfo, now: datetime | None = None) -> dict[str, Any]:
    """The canonical object for any accepted schedule value; ScheduleError otherwise.

    ``now`` is used to refuse a one-time schedule in the past.
    """
    if isinstance(value, str):
        spec = _parse_phrase(value)
    elif isinstance(value, dict):
        spec = _normalize_object(value)
    else:
        raise ScheduleError("must be a string such as '*/5 * * * *' or an object with a 'type'.")
    schedule = build(spec, zone, anchor=now or datetime.now(UTC))
    if spec["type"] == "once" and schedule.next_after(now or datetime.now(UTC)) is None:
        raise ScheduleError(f"'at' {spec['at']} is in the past.")
    return spec


def build(spec: dict[str, Any], zone: ZoneInfo, anchor: datetime) -> Schedule:
    """The schedule for a canonical object; ``anchor`` is when it took effect."""
    kind = spec["type"]
    if kind == "cron":
        return CronSchedule(spec["expression"], zone)
    if kind in ("hourly", "daily", "weekly", "monthly"):
        return CronSchedule(_calendar_to_cron(spec), zone)
    if kind == "interval":
        seconds = spec["every"] * INTERVAL_UNITS[spec["unit"]]
        start = _parse_instant(spec["start_at"], zone) if spec.get("start_at") else None
        label = f"{spec['every']} {spec['unit']}" if spec["every"] != 1 else spec["unit"][:-1]
        return IntervalSchedule(seconds, start or anchor + timedelta(seconds=seconds), label)
    if kind == "once":
        return OnceSchedule(_parse_instant(spec["at"], zone))
    if kind == "manual":
        return ManualSchedule()
    raise ScheduleError(f"unknown schedule type {kind!r}.")


def _parse_phrase(text: str) -> dict[str, Any]:
    phrase = " ".join(text.strip().lower().split())
    if not phrase:
        raise ScheduleError("must not be empty.")
    if phrase == "manual":
        return {"type": "manual"}
    if phrase in CRON_ALIASES:
        return {"type": "cron", "expression": phrase}
    if phrase == "hourly":
        return {"type": "hourly", "minute": 0}
    if phrase == "daily":
        return {"type": "daily", "time": "00:00"}
    if match := _EVERY_RE.match(phrase):
        every = int(match.group(1) or 1)
        return _normalize_object({"type": "interval", "every": every, "unit": match.group(2) + "s"})
    if match := _AT_RE.match(phrase):
        day, time = match.groups()
        if day == "daily":
            return _normalize_object({"type": "daily", "time": time})
        if day in WEEKDAYS:
            return _normalize_object(
                {"type": "weekly", "days_of_week": [WEEKDAYS.index(day)], "time": time}
            )
    if phrase[0].isdigit() or phrase[0] in "*?":
        # Looks like cron: let the cron validator say exactly what is wrong with it.
        return _cron_object({"expression": text})
    raise ScheduleError(
        f"could not understand {text!r}. Use a cron expression ('*/5 * * * *'), "
        "'every N seconds|minutes|hours|days|weeks', 'hourly', 'daily', "
        "'daily at HH:MM', '<weekday> at HH:MM', an @alias such as '@daily', or 'manual'."
    )


def _normalize_object(obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj.get("type")
    normalizers = {
        "cron": _cron_object,
        "interval": _interval_object,
        "once": _once_object,
        "manual": lambda o: {"type": "manual"},
        "hourly": _hourly_object,
        "daily": lambda o: {"type": "daily", "time": _time_field(o)},
        "weekly": _weekly_object,
        "monthly": _monthly_object,
    }
    if kind not in normalizers:
        raise ScheduleError(f"'type' must be one of {', '.join(normalizers)}; got {kind!r}.")
    return normalizers[kind](obj)


def _cron_object(obj: dict[str, Any]) -> dict[str, Any]:
    expression = obj.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("a cron schedule needs 'expression', a cron string.")
    return {"type": "cron", "expression": " ".join(expression.split())}


def _interval_object(obj: dict[str, Any]) -> dict[str, Any]:
    every, unit = obj.get("every"), obj.get("unit", "seconds")
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ScheduleError(f"'every' must be a positive whole number; got {every!r}.")
    if unit not in INTERVAL_UNITS:
        raise ScheduleError(f"'unit' must be one of {', '.join(INTERVAL_UNITS)}; got {unit!r}.")
    spec: dict[str, Any] = {"type": "interval", "every": every, "unit": unit}
    if obj.get("start_at"):
        _parse_instant(obj["start_at"], UTC)
        spec["start_at"] = obj["start_at"]
    return spec


def _once_object(obj: dict[str, Any]) -> dict[str, Any]:
    if not obj.get("at"):
        raise ScheduleError("a once schedule needs 'at', an ISO 8601 date and time.")
    _parse_instant(obj["at"], UTC)
    return {"type": "once", "at": obj["at"]}


def _hourly_object(obj: dict[str, Any]) -> dict[str, Any]:
    minute = obj.get("minute", 0)
    if isinstance(minute, bool) or not isinstance(minute, int) or not 0 <= minute <= 59:
        raise ScheduleError(f"'minute' must be a whole number from 0 to 59; got {minute!r}.")
    return {"type": "hourly", "minute": minute}


def _weekly_object(obj: dict[str, Any]) -> dict[str, Any]:
    days = obj.get("days_of_week")
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
    ):
        raise ScheduleError("'days_of_week' must be a list of days, 0 (Monday) to 6 (Sunday).")
    return {"type": "weekly", "days_of_week": sorted(set(days)), "time": _time_field(obj)}


def _monthly_object(obj: dict[str, Any]) -> dict[str, Any]:
    day = obj.get("day_of_month")
    if isinstance(day, bool) or not isinstance(day, int) or not (1 <= day <= 31 or day == -1):
        raise ScheduleError(f"'day_of_month' must be 1 to 31, or -1 for the last; got {day!r}.")
    return {"type": "monthly", "day_of_month": day, "time": _time_field(obj)}


def _time_field(obj: dict[str, Any]) -> str:
    value = obj.get("time", "00:00")
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ScheduleError(f"'time' must be HH:MM on a 24-hour clock; got {value!r}.")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _calendar_to_cron(spec: dict[str, Any]) -> str:
    if spec["type"] == "hourly":
        return f"{spec['minute']} * * * *"
    hour, minute = (int(part) for part in spec["time"].split(":"))
    if spec["type"] == "daily":
        return f"{minute} {hour} * * *"
    if spec["type"] == "weekly":
        # Ours count from Monday = 0; cron counts from Sunday = 0.
        cron_days = ",".join(str((day + 1) % 7) for day in spec["days_of_week"])
        return f"{minute} {hour} * * {cron_days}"
    day = "L" if spec["day_of_month"] == -1 else spec["day_of_month"]
    return f"{minute} {hour} {day} * *"


def _parse_instant(value: Any, zone: ZoneInfo | type[UTC] | Any) -> datetime:
    """An ISO 8601 instant; a naive one is read in ``zone``."""
    if not isinstance(value, str):
        raise ScheduleError(f"{value!r} is not an ISO 8601 date and time.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"{value!r} is not an ISO 8601 date and time.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


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
