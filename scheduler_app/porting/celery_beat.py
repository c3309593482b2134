"""A Celery ``beat_schedule`` (as JSON: the CLI turns a module's into this on the
user's machine; the server never imports user code) as ``celery`` jobs.

``{"timezone": "Europe/Paris", "beat_schedule": {"<name>": {"task", "schedule",
"args", "kwargs", "options"}}}``. A schedule that is a number is an interval of that
many seconds; ``{"crontab": {...}}`` is read by Celery's own ``crontab`` (so its
fields mean what they mean to Celery: day_of_week 0 is Sunday, names, ranges, steps)
and written as a cron expression. Celery fires only on a day that matches both
day_of_month and day_of_week, where cron fires on a day that matches either when
both are restricted: such a pair is written so that cron reads it as Celery does
(see :func:`day_fields`), or refused when cron cannot say it.
``line`` is the entry's place in ``beat_schedule`` (1 for the first).
"""

from __future__ import annotations

import json
from typing import Any

from celery.schedules import crontab

from scheduler_app.porting import safe_yaml
from scheduler_app.porting.items import FileError, Item, Options, check_count

CRON_KEYS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
# The days of each week of the month, as cron's ``weekday#n`` counts them.
WEEKS = {n: set(range(7 * n - 6, min(7 * n, 31) + 1)) for n in range(1, 6)}
ALL_DAYS, ALL_WEEKDAYS = set(range(1, 32)), set(range(7))
KNOWN_OPTIONS = {"queue", "priority"}


def read(text: str, options: Options) -> list[Item]:
    try:
        data = json.loads(text)
    except ValueError:
        data = safe_yaml.load_all(text)[0][0] if text.strip() else None
    if not isinstance(data, dict) or not isinstance(data.get("beat_schedule"), dict):
        raise FileError('expected {"timezone": ..., "beat_schedule": {"<name>": {...}}} '
                        "(the CLI writes it from a beat_schedule).")  # fmt: skip
    zone = data.get("timezone") or options.timezone
    entries = data["beat_schedule"]
    check_count(len(entries))
    return [entry_item(index, str(name), entry, zone, options)
            for index, (name, entry) in enumerate(entries.items(), 1)]  # fmt: skip


def entry_item(index: int, name: str, entry: Any, zone: Any, options: Options) -> Item:
    item = Item(index, f"beat_schedule[{name!r}]", name)
    if not isinstance(entry, dict):
        return item.refuse("non_field_errors", "each entry must be an object with 'task'.")
    try:
        schedule = schedule_of(entry.get("schedule"))
    except ValueError as exc:
        return item.refuse("schedule", str(exc))
    fields = {
        "name": name,
        "kind": "celery",
        "payload": {"task": entry.get("task"), "args": entry.get("args", []),
                    "kwargs": entry.get("kwargs", {})},
        "schedule": schedule,
        "timezone": zone,
        "queue": options.queue,
    }  # fmt: skip
    extra = entry.get("options") or {}
    if isinstance(extra, dict):
        if "queue" in extra:
            fields["queue"] = extra["queue"]
        if "priority" in extra:
            fields["priority"] = extra["priority"]
        for key in sorted(set(extra) - KNOWN_OPTIONS):
            item.warnings.append(f"options.{key} is not honoured.")
    for key in sorted(set(entry) - {"task", "schedule", "args", "kwargs", "options"}):
        item.warnings.append(f"{key} is not honoured.")
    item.fields = fields
    return item


def schedule_of(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        raise ValueError('must be a number of seconds or {"crontab": {...}}.')
    if isinstance(value, int | float):
        return interval(value)
    if isinstance(value, dict) and isinstance(value.get("crontab"), dict):
        return {"type": "cron", "expression": cron_expression(value["crontab"])}
    raise ValueError('must be a number of seconds or {"crontab": {...}} (solar and other '
                     "schedules are not supported).")  # fmt: skip


def interval(seconds: float) -> dict[str, Any]:
    if seconds != int(seconds) or seconds < 1:
        raise ValueError(f"{seconds} seconds: intervals are whole seconds, at least 1.")
    return {"type": "interval", "every": int(seconds), "unit": "seconds"}


def cron_expression(fields: dict[str, Any]) -> str:
    """The cron expression that fires when Celery's ``crontab(**fields)`` does."""
    unknown = set(fields) - set(CRON_KEYS)
    if unknown:
        raise ValueError(f"crontab takes {', '.join(CRON_KEYS)}; not {', '.join(sorted(unknown))}.")
    try:
        spec = crontab(**{key: _text(value) for key, value in fields.items()})
    except Exception as exc:  # Celery's parser raises ValueError or its ParseException
        raise ValueError(f"Celery cannot read this crontab: {exc}") from None
    days, weekday = day_fields(set(spec.day_of_month), set(spec.day_of_week))
    return " ".join([listed(spec.minute, 0, 59), listed(spec.hour, 0, 23), days,
                     listed(spec.month_of_year, 1, 12), weekday])  # fmt: skip


def _text(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def day_fields(days: set[int], weekdays: set[int]) -> tuple[str, str]:
    """Cron's day-of-month and day-of-week fields for Celery's rule: both must match.

    Cron (Vixie's, ours, cronsim's) requires both day fields to match when either
    field's text starts with ``*``, and either when neither does. So: a full field is
    ``*``; a weekday in whole weeks of the month is that weekday's ``#n`` (1-7 and
    Monday: ``1#1``); else a restricted field is made to start with ``*`` without
    changing its days: ``*/31`` is the 1st alone, ``*/7`` Sunday alone.
    """
    if days == ALL_DAYS or weekdays == ALL_WEEKDAYS:
        return listed(days, 1, 31), listed(weekdays, 0, 6)
    weeks = [n for n, week in WEEKS.items() if week <= days]
    if set().union(*(WEEKS[n] for n in weeks)) == days:
        return "*", ",".join(f"{day}#{n}" for day in sorted(weekdays) for n in weeks)
    if 1 in days:
        return _starred("*/31", days - {1}, 1, 31), listed(weekdays, 0, 6)
    if 0 in weekdays:
        return listed(days, 1, 31), _starred("*/7", weekdays - {0}, 0, 6)
    raise ValueError(
        "Celery fires only on days that match both day_of_month and day_of_week; cron "
        "cannot say that for these days (it can when the days of the month include the "
        "1st, the weekdays Sunday, or the days are whole weeks: 1-7, 8-14, ...)."
    )


def _starred(star: str, rest: set[int], low: int, high: int) -> str:
    return ",".join([star, listed(rest, low, high)]) if rest else star


def listed(values: Any, low: int, high: int) -> str:
    """``*`` for every value, else a list with runs as ranges (1,2,3,5 -> 1-3,5)."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    parts, start = [], None
    for index, value in enumerate(ordered):
        start = value if start is None else start
        if index + 1 == len(ordered) or ordered[index + 1] != value + 1:
            parts.append(str(value) if start == value else f"{start}-{value}")
            start = None
    return ",".join(parts)
