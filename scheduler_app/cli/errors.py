"""What the CLI tells and the exit code scripts can rely on."""

from __future__ import annotations

from typing import Any

OK, FAILURE, USAGE, NOT_FOUND, REFUSED = 0, 1, 2, 3, 4


class CliError(Exception):
    """A failure to report on stderr (one message, possibly several lines) and exit with."""

    def __init__(
        self, message: str, exit_code: int = FAILURE, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.http_status = http_status  # when the API refused


def field_lines(errors: Any, prefix: str = "") -> list[str]:
    """An API error body as ``field: message`` lines; nested fields joined by dots
    (``payload.command``), list items by their index (``depends_on.0.job``)."""
    if isinstance(errors, dict):
        lines = []
        for key, value in errors.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            lines += field_lines(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return lines
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [f"{prefix}: {item}" if prefix else item for item in errors]
        lines = []
        for index, item in enumerate(errors):
            if item:
                lines += field_lines(item, f"{prefix}.{index}" if prefix else str(index))
        return lines
    return [f"{prefix}: {errors}" if prefix else str(errors)]
