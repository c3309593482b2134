"""What every executor returns, and the interface the registry holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from scheduler_app.models import Run


@dataclass(frozen=True)
class Outcome:
    status: str  # one of Run.Status: succeeded, failed, timed_out or cancelled
    exit_code: int | None = None
    output: str = ""
    error: str = ""
    result: dict[str, Any] | None = field(default=None)


class Executor(Protocol):
    def execute(self, run: Run) -> Outcome:
        """Run the job of ``run`` to its end (or timeout, or cancel)."""
