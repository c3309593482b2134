"""The fault suite: each test breaks a part of the real stack and reports a figure line
(slots due, runs completed, doubled, lost, time to recover), printed at the end of the
session so CI's log carries them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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
