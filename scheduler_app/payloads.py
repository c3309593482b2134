"""What each job kind's payload must hold: one validator per kind, in the registry ``KINDS``.

A validator returns the payload as it will be stored (defaults filled in, paths
made real) or raises :class:`PayloadError` saying what is wrong. The workers
run what these let through; they import from here, never the other way round.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

from config.celery import app
from scheduler_app import egress

DEFAULT_SHELL = "/bin/sh"
MAX_STEPS = 100  # commands in a ``commands`` job
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# The scheduler's own tasks (``workers.*``) may not be called by a job, but for this
# sample; a task added there is internal without being listed anywhere.
OWN_TASKS_PREFIX = "workers."
CALLABLE_OWN_TASKS = ("workers.echo",)

# Control characters (C0 and DEL). A NUL can never reach a program (argv and the
# environment are C strings) nor PostgreSQL; in a value that is one line (a path, a
# URL, a header: CR/LF there is header injection) none is valid; in text that a
# shell or Python reads (commands, code, arguments, env values) only tab and newline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BUT_TAB_LF = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Linux: the longest single argument or environment string, its NUL included.
MAX_ARG_STRLEN = 131072
# An HTTP header's name is a token (RFC 9110); its value at most this many bytes.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
MAX_HEADERS = 50
MAX_HEADER_BYTES = 8192

Payload = dict[str, Any]


class PayloadError(ValueError):
    """A job payload that the kind's executor cannot run; the message says why."""


def _controls(text: str, what: str, pattern: re.Pattern[str], allowed: str) -> None:
    found = pattern.search(text)
    if found:
        raise PayloadError(
            f"{what} must not contain control characters{allowed}; "
            f"found {found.group()!r} at position {found.start()}."
        )


def one_line(text: str, what: str) -> str:
    """``text``; PayloadError if it holds any control character (a path, a URL, a name)."""
    _controls(text, what, _CONTROL, "")
    return text


def multi_line(text: str, what: str) -> str:
    """``text``; PayloadError if it holds a control character other than tab and newline
    (text a shell or Python reads: a command, code, an environment value)."""
    _controls(text, what, _CONTROL_BUT_TAB_LF, " other than tab and newline")
    return text


def program_text(text: str, what: str) -> str:
    """``text`` a shell or Python reads as one argument (a command, code, an argument):
    :func:`multi_line`, and at most SCHEDULER_MAX_COMMAND_BYTES bytes, so it can always
    be passed to the program."""
    check_size(len(multi_line(text, what).encode()), what)
    return text


def check_size(size: int, what: str) -> None:
    limit = settings.SCHEDULER_MAX_COMMAND_BYTES
    if size > limit:
        raise PayloadError(
            f"{what} is {size} bytes; at most {limit} are allowed (SCHEDULER_MAX_COMMAND_BYTES)."
        )


def allowed_path(path: str) -> str:
    """``path`` made absolute and real; PayloadError unless it lies in SCHEDULER_ALLOWED_DIRS."""
    one_line(path, repr(path[:60]))
    real = os.path.realpath(path)
    for root in settings.SCHEDULER_ALLOWED_DIRS:
        base = os.path.realpath(root)
        if real == base or real.startswith(base + os.sep):
            return real
    allowed = ", ".join(settings.SCHEDULER_ALLOWED_DIRS) or "(none configured)"
    raise PayloadError(
        f"{path!r} is outside the directories jobs may use (SCHEDULER_ALLOWED_DIRS: {allowed})."
    )


def registered_tasks() -> set[str]:
    """The Celery tasks a ``celery`` job may call: the app's own, not Celery's nor ours."""
    app.loader.import_default_modules()
    return {name for name in app.tasks if not _internal(name)}


def _internal(name: str) -> bool:
    if name.startswith(OWN_TASKS_PREFIX):
        return name not in CALLABLE_OWN_TASKS
    return name.startswith("celery.")


def _object(payload: Any, example: str) -> Payload:
    if not isinstance(payload, dict):
        raise PayloadError(f"must be an object such as {example}.")
    return payload


def _shell(payload: Payload) -> str:
    shell = payload.get("shell", DEFAULT_SHELL)
    if not isinstance(shell, str) or not os.path.isabs(shell):
        raise PayloadError(f"'shell' must be an absolute path such as /bin/sh; got {shell!r}.")
    return one_line(shell, "'shell'")


def _args(payload: Payload) -> list[str]:
    args = payload.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PayloadError("'args' must be a list of strings.")
    for index, arg in enumerate(args):
        program_text(arg, f"'args' item {index + 1}")
    check_size(sum(len(arg.encode()) + 1 for arg in args), "'args' together")
    return args


def _path(payload: Payload, example: str) -> str:
    path = payload.get("path")
    if not isinstance(path, str) or not path.strip():
        raise PayloadError(f"'path' is required, such as {example!r}.")
    return allowed_path(path)


def command(payload: Any) -> Payload:
    payload = _object(payload, '{"command": "echo hello"}')
    text = payload.get("command")
    if not isinstance(text, str) or not text.strip():
        raise PayloadError("'command' is required: the shell command to run.")
    return {"command": program_text(text, "'command'"), "shell": _shell(payload)}


def commands(payload: Any) -> Payload:
    payload = _object(payload, '{"commands": ["make", "make test"]}')
    steps = payload.get("commands")
    if (
        not isinstance(steps, list)
        or not steps
        or not all(isinstance(c, str) and c.strip() for c in steps)
    ):
        raise PayloadError("'commands' must be a non-empty list of shell commands.")
    if len(steps) > MAX_STEPS:
        raise PayloadError(f"'commands' may hold at most {MAX_STEPS} commands.")
    for index, step in enumerate(steps):
        program_text(step, f"'commands' item {index + 1}")
    stop = payload.get("stop_on_failure", True)
    if not isinstance(stop, bool):
        raise PayloadError("'stop_on_failure' must be true or false.")
    return {"commands": steps, "stop_on_failure": stop, "shell": _shell(payload)}


def script(payload: Any) -> Payload:
    payload = _object(payload, '{"path": "/srv/jobs/report.py"}')
    return {"path": _path(payload, "/srv/jobs/report.py"), "args": _args(payload)}


def python(payload: Any) -> Payload:
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, str) or not code.strip():
        raise PayloadError("'code' is required: the Python source to run.")
    return {"code": program_text(code, "'code'")}


def pytest(payload: Any) -> Payload:
    payload = _object(payload, '{"path": "/srv/app/tests/"}')
    return {"path": _path(payload, "/srv/app/tests/"), "args": _args(payload)}


def _url(payload: Payload) -> str:
    url = payload.get("url")
    parts = urlparse(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise PayloadError(f"'url' must be an http:// or https:// URL; got {url!r}.")
    url = one_line(url, "'url'")
    # A literal address (or localhost) is judged now; other names when the job runs.
    if refusal := egress.check_url(url):
        raise PayloadError(f"'url' {refusal}")
    return url


def _method(payload: Payload) -> str:
    method = str(payload.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        raise PayloadError(f"'method' must be one of {', '.join(HTTP_METHODS)}; got {method!r}.")
    return method


def _headers(payload: Payload) -> dict[str, str]:
    headers = payload.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise PayloadError("'headers' must be an object of strings.")
    if len(headers) > MAX_HEADERS:
        raise PayloadError(f"'headers' may hold at most {MAX_HEADERS} headers.")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise PayloadError(
                f"'headers': {name[:60]!r} is not a header name (letters, digits and "
                "!#$%&'*+-.^_`|~, no spaces or control characters)."
            )
        _controls(value, f"'headers' {name}", _CONTROL_BUT_TAB, " other than tab")
        if not value.isascii():  # HTTP sends header values as Latin-1 at best: refuse both
            raise PayloadError(f"'headers' {name}: use ASCII only (percent-encode the rest).")
        if len(value.encode()) > MAX_HEADER_BYTES:
            raise PayloadError(f"'headers' {name} is longer than {MAX_HEADER_BYTES} bytes.")
    return headers


def _expect_status(payload: Payload) -> list[int]:
    expect = payload.get("expect_status", [200])
    if (
        not isinstance(expect, list)
        or not expect
        or not all(isinstance(c, int) and 100 <= c <= 599 for c in expect)
    ):
        raise PayloadError("'expect_status' must be a list of HTTP status codes.")
    return expect


def _body(payload: Payload) -> Any:
    body = payload.get("body")
    if body is not None and not isinstance(body, str | dict | list):
        raise PayloadError("'body' must be a string, or an object or list sent as JSON.")
    return body


def http(payload: Any) -> Payload:
    payload = _object(payload, '{"url": "https://example.com/"}')
    return {
        "url": _url(payload),
        "method": _method(payload),
        "headers": _headers(payload),
        "body": _body(payload),
        "expect_status": _expect_status(payload),
    }


def celery(payload: Any) -> Payload:
    payload = _object(payload, '{"task": "app.tasks.cleanup"}')
    task, args, kwargs = payload.get("task"), payload.get("args", []), payload.get("kwargs", {})
    known = registered_tasks()
    if task not in known:
        raise PayloadError(
            f"'task' must be a registered Celery task; {task!r} is not. "
            f"Known: {', '.join(sorted(known)) or 'none'}. An operator registers the "
            "modules of other tasks with SCHEDULER_TASK_MODULES (on the web and the workers)."
        )
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PayloadError("'args' must be a list and 'kwargs' an object.")
    # They reach the child as one JSON argument (workers/executors/celery_task.py).
    check_size(len(json.dumps({"task": task, "args": args, "kwargs": kwargs})), "the call")
    return {"task": task, "args": args, "kwargs": kwargs}


MAX_DEPLOY_ITEMS = 100  # files in a ``file`` job, packages in a ``software`` job
# A file mode: permission bits only (no setuid, setgid or sticky bit), as octal digits.
_MODE = re.compile(r"0?[0-7]{3}")
# A version as a package manager writes it (1.2.3, 2.0rc1, 1:2.3-4ubuntu1, 1.0+local).
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:~!-]{0,99}")


def _ids(value: Any, what: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in value)
    ):
        raise PayloadError(f"{what} must be a non-empty list of ids, such as [1, 2].")
    if len(value) > MAX_DEPLOY_ITEMS:
        raise PayloadError(f"{what} may hold at most {MAX_DEPLOY_ITEMS} items.")
    if len(set(value)) != len(value):
        raise PayloadError(f"{what} names the same id twice.")
    return value


def _flag(payload: Payload, name: str, default: bool) -> bool:
    value = payload.get(name, default)
    if not isinstance(value, bool):
        raise PayloadError(f"'{name}' must be true or false.")
    return value


def target_path(value: Any) -> str:
    """An absolute directory, normalised, within SCHEDULER_ALLOWED_DIRS."""
    if not isinstance(value, str) or not os.path.isabs(value):
        raise PayloadError(f"'target_path' must be an absolute directory; got {value!r}.")
    one_line(value, "'target_path'")
    try:
        return allowed_path(os.path.normpath(value))
    except PayloadError as exc:
        raise PayloadError(f"'target_path' {exc}") from None


def file_mode(value: Any) -> str:
    """The mode of deployed files as 4 octal digits; setuid, setgid and sticky refused."""
    if not isinstance(value, str) or not _MODE.fullmatch(value):
        raise PayloadError(
            f"'mode' must be an octal string of permission bits such as \"0644\" "
            f"(no setuid, setgid or sticky bit); got {value!r}."
        )
    return f"{int(value, 8):04o}"


def file(payload: Any) -> Payload:
    payload = _object(payload, '{"files": [1], "target_path": "/srv/app/conf"}')
    return {
        "files": _ids(payload.get("files"), "'files'"),
        "target_path": target_path(payload.get("target_path")),
        "create_path": _flag(payload, "create_path", True),
        "mode": file_mode(payload.get("mode", "0644")),
        "overwrite": _flag(payload, "overwrite", True),
    }


def version(value: Any, what: str) -> str:
    if not isinstance(value, str) or not VERSION.fullmatch(value):
        raise PayloadError(
            f"{what} must be a version such as 1.2.3 (letters, digits and ._+:~!-, at most "
            f"100 characters); got {value!r}."
        )
    return value


def _package(item: Any, index: int) -> dict[str, Any]:
    what = f"'packages' item {index + 1}"
    if isinstance(item, dict) and "software" in item and set(item) <= {"software", "version"}:
        chosen = {"software": _ids([item["software"]], f"{what} 'software'")[0]}
        if "version" in item:  # another version than the catalogue's
            chosen["version"] = version(item["version"], f"{what} 'version'")
        return chosen
    if isinstance(item, dict) and set(item) == {"name", "version"}:
        name = item["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise PayloadError(f"{what} 'name' must be the name of a catalogue entry.")
        return {"name": one_line(name, f"{what} 'name'"),
                "version": version(item["version"], f"{what} 'version'")}  # fmt: skip
    raise PayloadError(
        f'{what} must be {{"software": <id>}} (optionally with "version") or '
        f'{{"name": <catalogue name>, "version": ...}}.'
    )


def software(payload: Any) -> Payload:
    payload = _object(payload, '{"packages": [{"software": 1}]}')
    packages = payload.get("packages")
    if not isinstance(packages, list) or not packages:
        raise PayloadError("'packages' must be a non-empty list of catalogue packages.")
    if len(packages) > MAX_DEPLOY_ITEMS:
        raise PayloadError(f"'packages' may hold at most {MAX_DEPLOY_ITEMS} items.")
    return {
        "packages": [_package(item, index) for index, item in enumerate(packages)],
        "stop_on_failure": _flag(payload, "stop_on_failure", True),
    }


# The job kinds, in the order the API and admin list them.
KINDS: dict[str, Callable[[Any], Payload]] = {
    "command": command,
    "commands": commands,
    "script": script,
    "python": python,
    "pytest": pytest,
    "http": http,
    "celery": celery,
    "file": file,
    "software": software,
}

# The kinds whose job runs the user's code on a worker (http only sends a request): they
# need the code right to define (scheduler_app/access.py), and run sandboxed. ``file``
# and ``software`` are among them: writing files or installing on a node is as strong.
CODE_KINDS = frozenset(KINDS) - {"http"}
