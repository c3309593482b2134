"""The fault suite: each test breaks a part of the real stack and reports a figure line
(slots due, runs completed, doubled, lost, time to recover), printed at the end of the
session so CI's log carries them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scheduler_app.embedded_redis import EmbeddedRedis, free_port
from tests.faults.own import OwnStack
from tests.helpers import Stack

FIGURES: list[str] = []


@pytest.fixture
def figures() -> Callable[..., None]:
    """Record this fault's figure line."""

    def record(fault: str, **numbers: object) -> None:
        FIGURES.append(
            fault + ": " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in numbers.items())
        )

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def own_stack(live: Stack, tmp_path: Path) -> Iterator[OwnStack]:
    """A stack of its own (tests/faults/own.py) on a Redis of its own, without persistence.
    The session's beat is stopped, so only this stack's beat fires and sweeps (``live``
    starts it again after)."""
    own = OwnStack(live, EmbeddedRedis.start(tmp_path / "redis", free_port(), persist=False))
    live.stop("beat")
    try:
        yield own
    finally:
        own.stop_all()
        own.redis.stop()
