"""One executor per job kind. ``for_kind`` is the registry the worker and validation use."""

from __future__ import annotations

from workers.executors.base import Executor, Outcome, PayloadError
from workers.executors.celery_task import CeleryTaskExecutor
from workers.executors.command import CommandExecutor, CommandsExecutor
from workers.executors.http import HttpExecutor
from workers.executors.python import PytestExecutor, PythonExecutor, ScriptExecutor

_EXECUTORS: dict[str, Executor] = {
    "command": CommandExecutor(),
    "commands": CommandsExecutor(),
    "script": ScriptExecutor(),
    "python": PythonExecutor(),
    "pytest": PytestExecutor(),
    "http": HttpExecutor(),
    "celery": CeleryTaskExecutor(),
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
