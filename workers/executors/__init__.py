"""One executor per job kind. ``for_kind`` is the registry the worker and validation use."""

from __future__ import annotations

from workers.executors.base import Executor, Outcome, PayloadError
from workers.executors.command import CommandExecutor

_EXECUTORS: dict[str, Executor] = {
    "command": CommandExecutor(),
}

SUPPORTED_KINDS = tuple(_EXECUTORS)


def for_kind(kind: str) -> Executor:
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise PayloadError(
            f"kind {kind!r} is not supported; supported kinds: {', '.join(SUPPORTED_KINDS)}."
        ) from None


__all__ = ["SUPPORTED_KINDS", "Executor", "Outcome", "PayloadError", "for_kind"]
