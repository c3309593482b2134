"""What a format's reader makes of a file: items, each one job, template or calendar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

JOB, TEMPLATE, CALENDAR = "job", "template", "calendar"


class FileError(ValueError):
    """The file as a whole cannot be read (not YAML, not the format's shape): a 400 on
    ``content`` with this message, nothing imported."""


@dataclass
class Item:
    """One thing to import. ``fields`` are the API's (a job's as JobSerializer takes
    them), with ``calendar``, ``team`` and ``depends_on`` given by name; ``errors`` set
    by the reader refuse it before it is judged (an unsupported line)."""

    line: int | None
    source: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    type: str = JOB
    errors: dict[str, list[str]] | None = None
    warnings: list[str] = field(default_factory=list)

    def refuse(self, field_name: str, message: str) -> Item:
        self.errors = {**(self.errors or {}), field_name: [message]}
        return self


@dataclass(frozen=True)
class Options:
    """What the request says beyond the file: defaults for fields a format lacks."""

    timezone: str = "UTC"
    queue: str = "default"
    crontab_system: bool | None = None  # None: detected from the file


def max_items() -> int:
    return int(settings.PORTING_MAX_ITEMS)


def check_count(count: int) -> None:
    if count > max_items():
        raise FileError(
            f"the file holds more than {max_items()} items (PORTING_MAX_ITEMS); split it."
        )


def clip(text: str, most: int = 200) -> str:
    """A source text for the report: one line, at most ``most`` characters."""
    one = " ".join(text.split())
    return one if len(one) <= most else one[: most - 1] + "…"
