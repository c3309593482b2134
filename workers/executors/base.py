"""What every executor returns, and the interface the registry holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from scheduler_app.models import Run


class PayloadError(ValueError):
    """A job payload that the kind's executor cannot run; the message says why."""


@dataclass(frozen=True)
class Outcome:
    status: str  # one of Run.Status: succeeded, failed, timed_out or cancelled
    exit_code: int | None = None
    output: str = ""
    error: str = ""
    result: dict[str, Any] | None = field(default=None)


class Executor(Protocol):
    def validate(self, payload: Any) -> dict[str, Any]:
        """The payload as it will be stored; PayloadError when it cannot be run."""

    def execute(self, run: Run) -> Outcome:
        """Run the job of ``run`` to its end (or timeout, or cancel)."""


def allowed_path(path: str) -> str:
    """``path`` made absolute and real; PayloadError unless it lies in SCHEDULER_ALLOWED_DIRS."""
    from django.conf import settings

    real = os.path.realpath(path)
    for root in settings.SCHEDULER_ALLOWED_DIRS:
        base = os.path.realpath(root)
        if real == base or real.startswith(base + os.sep):
            return real
    allowed = ", ".join(settings.SCHEDULER_ALLOWED_DIRS) or "(none configured)"
    raise PayloadError(
        f"{path!r} is outside the directories jobs may use (SCHEDULER_ALLOWED_DIRS: {allowed})."
    )
