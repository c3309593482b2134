"""A Celery ``beat_schedule`` read on the user's machine, turned into the JSON dump that
``POST /api/v1/import/`` takes with ``"format": "celery"``:

    {"timezone": "Europe/Paris", "beat_schedule": {"<name>": {"task": "proj.tasks.add",
     "schedule": <seconds> | {"crontab": {"minute": ..., "hour": ..., "day_of_week": ...,
     "day_of_month": ..., "month_of_year": ...}}, "args": [], "kwargs": {}, "options": {}}}}

The user's project is imported here, never on the server: it is their code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


class Unsupported(ValueError):
    """An entry the import cannot take, with the reason."""


def looks_like_module(spec: str) -> bool:
    """``proj.celeryconfig``, ``proj.celery:app`` or ``proj/celeryconfig.py``."""
    module, _, attribute = spec.partition(":")
    if module.endswith(".py"):
        return Path(module).is_file()
    parts = module.split(".")
    return all(part.isidentifier() for part in parts) and (
        not attribute or attribute.isidentifier()
    )


def load(spec: str) -> tuple[dict[str, Any], str]:
    """(beat_schedule, timezone) of a module (``beat_schedule`` / ``timezone``, or the
    old ``CELERYBEAT_SCHEDULE`` / ``CELERY_TIMEZONE``) or of a Celery app
    (``module:app``, or an ``app`` / ``celery`` in the module), imported as
    ``celery beat`` would, from the current directory."""
    module_name, _, attribute = spec.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    module = (
        import_file(module_name)
        if module_name.endswith(".py")
        else (importlib.import_module(module_name))
    )
    target: Any = getattr(module, attribute) if attribute else module
    schedule = None
    if isinstance(target, ModuleType):
        schedule = getattr(target, "beat_schedule", None) or getattr(
            target, "CELERYBEAT_SCHEDULE", None
        )
        zone = getattr(target, "timezone", None) or getattr(target, "CELERY_TIMEZONE", None)
        if schedule is None:
            target = getattr(target, "app", None) or getattr(target, "celery", None)
    if schedule is None:
        conf = getattr(target, "conf", None)
        if conf is None:
            raise Unsupported(f"{spec} has no beat_schedule, nor a Celery app whose conf has one.")
        schedule, zone = conf.beat_schedule, conf.timezone
    return dict(schedule or {}), str(zone or "UTC")


def import_file(path: str) -> ModuleType:
    """A Python file given by its path (``proj/celeryconfig.py``), loaded as a module."""
    location = importlib.util.spec_from_file_location(Path(path).stem, path)
    if location is None or location.loader is None:
        raise Unsupported(f"{path} is not a Python module.")
    module = importlib.util.module_from_spec(location)
    location.loader.exec_module(module)
    return module


def convert(beat_schedule: dict[str, Any], zone: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(the JSON dump of the entries that convert, {entry name: why not} for the others)."""
    entries: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for name, entry in beat_schedule.items():
        try:
            entries[str(name)] = convert_entry(entry)
        except Unsupported as exc:
            refused[str(name)] = str(exc)
    return {"timezone": zone, "beat_schedule": entries}, refused


def convert_entry(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or "task" not in entry or "schedule" not in entry:
        raise Unsupported("an entry needs a task and a schedule.")
    converted = {
        "task": entry["task"],
        "schedule": convert_schedule(entry["schedule"]),
        "args": list(entry.get("args") or []),
        "kwargs": dict(entry.get("kwargs") or {}),
        "options": dict(entry.get("options") or {}),
    }
    try:
        json.dumps(converted)
    except (TypeError, ValueError) as exc:
        raise Unsupported(f"its task, args, kwargs or options are not JSON: {exc}.") from exc
    return converted


def convert_schedule(value: Any) -> float | int | dict[str, Any]:
    # Celery is loaded only here: the other commands start without it.
    from celery import schedules

    if isinstance(value, bool):
        raise Unsupported("a schedule cannot be a boolean.")
    if isinstance(value, int | float):
        return seconds(value)
    if isinstance(value, timedelta):
        return seconds(value.total_seconds())
    if isinstance(value, schedules.crontab):
        return {"crontab": {field: crontab_field(value, field) for field in CRONTAB_FIELDS}}
    if isinstance(value, schedules.solar):
        raise Unsupported(
            f"a solar schedule ({value.event} at {value.lat}, {value.lon}) has no equivalent here."
        )
    if type(value) is schedules.schedule:
        return seconds(value.run_every.total_seconds())
    raise Unsupported(f"a {type(value).__name__} schedule is not supported.")


def seconds(value: float) -> float | int:
    if value <= 0:
        raise Unsupported(f"an interval must be positive, not {value}.")
    return int(value) if float(value).is_integer() else value


def crontab_field(value: Any, field: str) -> str:
    """The field as it was written (``*/5``, ``mon-fri``), else the values Celery
    expanded it to, comma-separated."""
    original = getattr(value, f"_orig_{field}", None)
    if isinstance(original, str | int) and not isinstance(original, bool):
        return str(original)
    return ",".join(str(number) for number in sorted(getattr(value, field)))
