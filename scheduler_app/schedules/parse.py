"""What users write, turned into the canonical schedule object stored on a job.

Accepted: a cron string; a phrase ("every 5 minutes", "weekdays at 9:00", "every
monday, wednesday at 18:15", "first day of month at 00:00"); an object with a
``type``; or a list of any of these (their union).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from scheduler_app.schedules.forms import CRON_ALIASES
from scheduler_app.schedules.limits import (
    MAX_INTERVAL_SECONDS,
    MAX_INTERVAL_TEXT,
    MAX_SCHEDULE_TEXT,
    check_instant,
)
from scheduler_app.schedules.zones import ScheduleError

INTERVAL_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MAX_UNION = 20

_UNIT_WORDS = {
    "s": "seconds", "sec": "seconds", "secs": "seconds", "second": "seconds", "seconds": "seconds",
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days", "week": "weeks", "weeks": "weeks",
}  # fmt: skip
_DAY_WORDS = {
    **{name: [i] for i, name in enumerate(WEEKDAYS)},
    **{name + "s": [i] for i, name in enumerate(WEEKDAYS)},
    **{name[:3]: [i] for i, name in enumerate(WEEKDAYS)},
    "tues": [1], "wed": [2], "thur": [3], "thurs": [3],
    "weekday": [0, 1, 2, 3, 4], "weekdays": [0, 1, 2, 3, 4],
    "weekend": [5, 6], "weekends": [5, 6],
}  # fmt: skip
_FILLER = {"every", "each", "on", "at", "and", "the", "of", "month", "in", "a", "an", "day"}
_TIME_RE = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_EVERY_RE = re.compile(r"^every\s+(?:(\d+|other)\s+)?([a-z]+)$")
_AT_SPLIT = re.compile(r"\s+at\s+")
_ORDINAL_RE = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
_JENKINS_H = re.compile(r"^h(\(\d+-\d+\))?(/\d+)?$")
# Each cron field's name and values, seconds first when there are 6 fields.
CRON_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
MAX_CRON_STEP = 60
_STEP = re.compile(r"/(\d+)")
_NTH = re.compile(r"#(\d+)")
_NUMBER = re.compile(r"\d+")
EXAMPLES = (
    "a cron expression ('*/5 * * * *'), 'every 30 seconds', 'every 2 hours', 'hourly', "
    "'daily at 10:30', 'monday at 09:00', 'weekdays at 9:00', "
    "'every monday, wednesday at 18:15', 'first day of month at 00:00', '@daily' or 'manual'"
)


def normalize_value(value: Any) -> dict[str, Any]:
    """The canonical object for a string, object or list; ScheduleError otherwise."""
    if isinstance(value, str):
        return parse_phrase(value)
    if isinstance(value, dict):
        return normalize_object(value)
    if isinstance(value, list):
        return _union(value)
    raise ScheduleError(
        "must be a string such as '*/5 * * * *', an object with a 'type', or a list of them."
    )


def _union(values: list[Any]) -> dict[str, Any]:
    if not values:
        raise ScheduleError("a list of schedules must not be empty.")
    if len(values) > MAX_UNION:
        raise ScheduleError(f"at most {MAX_UNION} schedules may be combined.")
    members: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        try:
            spec = normalize_value(value)
        except ScheduleError as exc:
            raise ScheduleError(f"schedule {index + 1} of the list: {exc}") from exc
        members.extend(spec["schedules"] if spec["type"] == "union" else [spec])
    return members[0] if len(members) == 1 else {"type": "union", "schedules": members}


# --- phrases -----------------------------------------------------------------


def parse_phrase(text: str) -> dict[str, Any]:
    _check_length(text)
    phrase = " ".join(text.strip().lower().replace(",", " , ").split()).replace(" ,", ",")
    if not phrase:
        raise ScheduleError("must not be empty.")
    if phrase[0].isdigit() or phrase[0] in "*?" or _JENKINS_H.match(phrase.split()[0]):
        # Looks like cron: let the cron parser say exactly what is wrong with it.
        return _cron_object({"expression": text})
    if phrase in CRON_ALIASES:
        return {"type": "cron", "expression": phrase}
    spec = _simple_phrase(phrase) or _timed_phrase(phrase)
    if spec is None:
        raise ScheduleError(_not_understood(text, phrase))
    return spec


def _simple_phrase(phrase: str) -> dict[str, Any] | None:
    fixed = {
        "manual": {"type": "manual"},
        "hourly": {"type": "hourly", "minute": 0},
        "daily": {"type": "daily", "time": "00:00"},
        "midnight": {"type": "daily", "time": "00:00"},
        "noon": {"type": "daily", "time": "12:00"},
        "weekly": {"type": "weekly", "days_of_week": [0], "time": "00:00"},
        "monthly": {"type": "monthly", "day_of_month": 1, "time": "00:00"},
        "yearly": {"type": "cron", "expression": "@yearly"},
        "annually": {"type": "cron", "expression": "@yearly"},
    }
    if phrase in fixed:
        return fixed[phrase]
    match = _EVERY_RE.match(phrase)
    if match and match.group(2) in _UNIT_WORDS:
        count = match.group(1)
        every = 2 if count == "other" else int(count or 1)
        return normalize_object(
            {"type": "interval", "every": every, "unit": _UNIT_WORDS[match.group(2)]}
        )
    return None


def _timed_phrase(phrase: str) -> dict[str, Any] | None:
    """'<when> at <time>' or '<when>' alone (midnight): days of week, daily, monthly."""
    parts = _AT_SPLIT.split(phrase)
    if len(parts) > 2:
        return None
    when, time_text = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "00:00")
    if when.startswith("at "):
        when, time_text = "daily", when[3:]
    time = parse_time(time_text)
    if time is None:
        return None
    when = when.removeprefix("every ").removeprefix("each ").removeprefix("on ")
    if when.startswith("hour") and ":" in time_text:
        return None
    if when in ("daily", "day", "every day", "days"):
        return {"type": "daily", "time": time}
    if (day := _day_of_month(when)) is not None:
        return {"type": "monthly", "day_of_month": day, "time": time}
    days = _days_of_week(when)
    if days:
        return {"type": "weekly", "days_of_week": days, "time": time}
    return None


def parse_time(text: str) -> str | None:
    """'9', '9:30', '09:30', '9am', '9:30 pm', 'noon', 'midnight' -> 'HH:MM'; None if not."""
    text = text.strip()
    if text in ("noon", "midday"):
        return "12:00"
    if text == "midnight":
        return "00:00"
    match = _TIME_RE.match(text)
    if not match:
        return None
    hour, minute, meridiem = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def _days_of_week(text: str) -> list[int] | None:
    days: set[int] = set()
    for word in re.split(r"[,\s]+", text):
        if word in ("", "and", "every", "on"):
            continue
        if word not in _DAY_WORDS:
            return None
        days.update(_DAY_WORDS[word])
    return sorted(days) or None


def _day_of_month(text: str) -> int | None:
    words = [w for w in text.split() if w not in ("the", "of", "every", "each", "month", "on")]
    if words in (["first", "day"], ["first"]):
        return 1
    if words in (["last", "day"], ["last"]):
        return -1
    if len(words) == 2 and words[0] == "day" and (match := _ORDINAL_RE.match(words[1])):
        day = int(match.group(1))
        return day if 1 <= day <= 31 else None
    if len(words) == 1 and "month" in text and (match := _ORDINAL_RE.match(words[0])):
        day = int(match.group(1))
        return day if 1 <= day <= 31 else None
    return None


def _not_understood(text: str, phrase: str) -> str:
    known = set(_UNIT_WORDS) | set(_DAY_WORDS) | _FILLER | {
        "hourly", "daily", "weekly", "monthly", "noon", "midnight", "other", "first", "last",
        "manual", "am", "pm",
    }  # fmt: skip
    tokens = [t for t in re.split(r"[,\s]+", phrase) if t]
    understood = [t for t in tokens if t in known or parse_time(t) or _ORDINAL_RE.match(t)]
    unknown = [t for t in tokens if t not in understood]
    if unknown:
        detail = f"understood {' '.join(understood) or 'nothing'!r}, but not {' '.join(unknown)!r}"
    else:
        detail = "understood each word, but not them together in this order"
    return f"could not understand {text!r}: {detail}. Use {EXAMPLES}."


# --- objects -------------------------------------------------------------------


def normalize_object(obj: dict[str, Any]) -> dict[str, Any]:
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
        "union": lambda o: _union(
            o.get("schedules") if isinstance(o.get("schedules"), list) else []
        ),
    }
    if kind not in normalizers:
        raise ScheduleError(f"'type' must be one of {', '.join(normalizers)}; got {kind!r}.")
    return normalizers[kind](obj)


def _check_length(text: str) -> None:
    if len(text) > MAX_SCHEDULE_TEXT:
        raise ScheduleError(
            f"must be at most {MAX_SCHEDULE_TEXT} characters; this one has {len(text)}."
        )


def _cron_object(obj: dict[str, Any]) -> dict[str, Any]:
    expression = obj.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("a cron schedule needs 'expression', a cron string.")
    _check_length(expression)
    fields = expression.split()
    if len(fields) == 1 and fields[0].lower() in CRON_ALIASES:
        return {"type": "cron", "expression": fields[0].lower()}
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 (seconds first)."
        )
    for (name, low, high), text in zip(CRON_FIELDS[6 - len(fields) :], fields, strict=True):
        problem = _cron_field_problem(text, low, high)
        if problem:
            raise ScheduleError(
                f"invalid cron expression {expression!r}: the {name} field {problem}"
            )
    return {"type": "cron", "expression": " ".join(fields)}


def _cron_field_problem(text: str, low: int, high: int) -> str:
    """What is out of range in one cron field ('' if nothing): each value within the
    field's, each step from 1 to MAX_CRON_STEP, each ``#n`` from 1 to 5.

    A step longer than its field is valid cron (Vixie's, cronsim's: ``*/9`` in the
    day of the week is Sunday alone), so steps share one bound, the longest field's.
    """
    for item in text.split(","):
        for step in _STEP.findall(item):
            if not 1 <= int(step) <= MAX_CRON_STEP:
                return f"takes steps from 1 to {MAX_CRON_STEP}; got /{step}."
        for nth in _NTH.findall(item):
            if not 1 <= int(nth) <= 5:
                return f"takes #1 to #5 (the nth weekday of the month); got #{nth}."
        for number in _NUMBER.findall(_NTH.sub("", _STEP.sub("", item))):
            if not low <= int(number) <= high:
                return f"allows {low}-{high}; got {number}."
    return ""


def _interval_object(obj: dict[str, Any]) -> dict[str, Any]:
    every, unit = obj.get("every"), obj.get("unit", "seconds")
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ScheduleError(f"'every' must be a positive whole number; got {every!r}.")
    if unit not in INTERVAL_UNITS:
        raise ScheduleError(f"'unit' must be one of {', '.join(INTERVAL_UNITS)}; got {unit!r}.")
    if every * INTERVAL_UNITS[unit] > MAX_INTERVAL_SECONDS:
        raise ScheduleError(
            f"'every' {unit} must be at most {MAX_INTERVAL_TEXT} "
            f"({MAX_INTERVAL_SECONDS // INTERVAL_UNITS[unit]} {unit}); got {every}."
        )
    spec: dict[str, Any] = {"type": "interval", "every": every, "unit": unit}
    if obj.get("start_at"):
        check_instant(parse_instant(obj["start_at"], "start_at"), "start_at")
        spec["start_at"] = obj["start_at"]
    return spec


def _once_object(obj: dict[str, Any]) -> dict[str, Any]:
    if not obj.get("at"):
        raise ScheduleError("a once schedule needs 'at', an ISO 8601 date and time.")
    check_instant(parse_instant(obj["at"], "at"), "at")
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
    match = _CLOCK_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ScheduleError(f"'time' must be HH:MM on a 24-hour clock; got {value!r}.")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def parse_instant(value: Any, field: str = "time") -> datetime:
    """An ISO 8601 date-time, naive or aware as written."""
    if not isinstance(value, str):
        raise ScheduleError(f"'{field}' must be an ISO 8601 date and time; got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(
            f"'{field}' must be an ISO 8601 date and time such as 2026-12-01T09:00:00Z; "
            f"got {value!r}."
        ) from exc
    return parsed
