"""How answers are shown: Rich tables sized to the terminal with coloured statuses for
people, the API's JSON (or the same as YAML) for scripts.

Rich leaves colour out when stdout is not a terminal; ``NO_COLOR`` leaves out every style."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "yaml")

STYLES = {
    # runs
    "succeeded": "green",
    "failed": "bold red",
    "timed_out": "red",
    "lost": "red",
    "running": "cyan",
    "queued": "yellow",
    "waiting": "yellow",
    "cancelled": "magenta",
    "skipped": "dim",
    # jobs
    "active": "green",
    "paused": "yellow",
    "completed": "dim",
    # imports
    "create": "green",
    "update": "yellow",
    "unchanged": "dim",
    "refused": "bold red",
}

# NO_COLOR (https://no-color.org): no colour, and here no bold or dim either: plain text.
PLAIN = {"color_system": None} if os.environ.get("NO_COLOR") else {}
out = Console(highlight=False, soft_wrap=False, **PLAIN)
err = Console(stderr=True, highlight=False, soft_wrap=True, **PLAIN)


def machine(data: Any, fmt: str) -> None:
    """``data`` as JSON or YAML on stdout, nothing else: what scripts parse."""
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    sys.stdout.flush()


def status(value: str | None) -> Text:
    if not value:
        return Text("-", style="dim")
    return Text(escape_controls(value), style=STYLES.get(value, ""))


def local_zone() -> str:
    """This machine's time zone, as tables name it in their headers: times are shown in it."""
    return datetime.now().astimezone().tzname() or "local"


def when(value: str | None) -> str:
    """An ISO 8601 instant from the API, in this machine's time zone."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


def size(value: int | None) -> str:
    """A number of bytes for people: ``2.0 KiB``."""
    if value is None:
        return "-"
    amount, unit = float(value), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    if unit == "bytes":
        return "1 byte" if value == 1 else f"{value} bytes"
    return f"{amount:.1f} {unit}"


def plain(value: Any) -> str | Text:
    """A cell: text as it is (control characters shown escaped), None as a dash,
    anything else as compact JSON."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, str):
        return Text(escape_controls(value))
    return Text(json.dumps(value, ensure_ascii=False))


def escape_controls(value: str) -> str:
    """A value shown in a cell cannot move the cursor or recolour the terminal."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode()
        for ch in value
    )


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], console: Console | None = None
) -> None:
    grid = Table(*columns, header_style="bold", box=None, pad_edge=False)
    for row in rows:
        grid.add_row(*(plain(cell) for cell in row))
    (console or out).print(grid)


def fields(data: dict[str, Any], names: Sequence[str] | None = None) -> None:
    """One object as ``name  value`` lines."""
    grid = Table(show_header=False, box=None, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name in names or list(data):
        if name in data:
            value = data[name]
            cell = status(value) if name in ("status", "last_status") else plain(value)
            grid.add_row(name, cell)
    out.print(grid)


def say(message: str) -> None:
    """A note for the person at the terminal: on stderr, so stdout stays the data. A
    name or message from the server in it cannot move the cursor or recolour."""
    err.print("\n".join(escape_controls(line) for line in message.split("\n")), markup=False)
