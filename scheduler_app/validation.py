"""The job rules, written once: the API, the admin and ``Job.clean`` all call :func:`clean_job`.

So all three refuse the same jobs with the same messages. Nothing here knows
DRF, Django forms or the models (``models`` imports this module): plain values
in, normalised values or one :class:`JobRulesError` (field -> messages) out.
What is left to the adapters is reading their input's types (JSON, form text).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from scheduler_app import egress, schedules, selectors
from scheduler_app.payloads import (
    KINDS,
    MAX_ARG_STRLEN,
    PayloadError,
    allowed_path,
    multi_line,
    one_line,
    program_text,
)

# The fields of a job that its owner edits, in the order the API and admin show them.
JOB_FIELDS = (
    "name",
    "description",
    "tags",
    "kind",
    "payload",
    "schedule",
    "timezone",
    "enabled",
    "timeout",
    "max_memory_mb",
    "max_cpu_seconds",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "start_at",
    "end_at",
    "window",
    "jitter",
    "calendar",
    "calendar_policy",
    "misfire_grace",
    "catchup",
    "concurrency_policy",
    "max_concurrent",
    "fan_out",
    "quorum",
    "targets",
    "target_mode",
    "max_parallel",
    "halt_on_failure",
    "priority",
    "queue",
    "env",
    "working_dir",
    "condition",
    "notify_emails",
    "notify_webhooks",
    "notify_on",
    "alert_if_missed",
    "alert_if_late",
    "alert_if_longer",
)

MASK = "***"  # how a secret env value is shown, in the API and in a run's output
# A shorter secret would mask its characters wherever they appear in the output.
MIN_SECRET_LENGTH = 4
DEFAULT_KIND = "command"
DEFAULT_TIMEZONE = "UTC"
NOTIFY_EVENTS = ("failure", "success", "recovery")
MAX_TAG_LENGTH = 64
MAX_EMAILS = 50
MAX_WEBHOOKS = 20
DAY = 86400

QUEUE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")
# Variables that change how a child starts (the loader, an interpreter, a shell) before the
# job's own code runs, or where it finds programs: a job's env may not set them. A job that
# needs one sets it in its own command (``PATH=/opt/bin:$PATH; ...``). Names that start with
# a prefix in ENV_REFUSED_PREFIXES, or are in ENV_REFUSED.
ENV_REFUSED_PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL5", "RUBY", "NODE_", "SCHEDULER_")
ENV_REFUSED = frozenset(
    {
        "BROWSER", "BASH_ENV", "ENV", "IFS", "PATH", "SHELLOPTS", "BASHOPTS", "PS4",
        "PROMPT_COMMAND", "PERLLIB", "PERLIO", "GLIBC_TUNABLES", "GCONV_PATH", "NLSPATH",
        "HOSTALIASES", "RESOLV_HOST_CONF", "LOCPATH", "MALLOC_CHECK_", "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "DJANGO_SETTINGS_MODULE",
    }
)  # fmt: skip
_webhook_url = URLValidator(schemes=["http", "https"])


class JobRulesError(ValueError):
    """Every rule a job breaks, at once: field name -> messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class RuleError(ValueError):
    """One rule's complaint about its field; the message says what is wrong."""


@dataclass(frozen=True)
class Bound:
    """An integer field's range; ``high`` may name the setting that holds the upper limit."""

    low: int
    high: int | str

    @property
    def top(self) -> int:
        return int(getattr(settings, self.high)) if isinstance(self.high, str) else self.high

    def check(self, value: Any) -> int | None:
        """``value``; None is left to the field's own null rule."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError("must be a whole number.")
        if value < self.low:
            raise RuleError(f"must be greater than or equal to {self.low}.")
        if value > self.top:
            source = f" ({self.high})" if isinstance(self.high, str) else ""
            raise RuleError(f"must be less than or equal to {self.top}{source}.")
        return value


BOUNDS = {
    "timeout": Bound(1, "SCHEDULER_MAX_TIMEOUT"),
    "max_memory_mb": Bound(16, 1024 * 1024),
    "max_cpu_seconds": Bound(1, 7 * DAY),
    "max_retries": Bound(0, 100),
    "retry_delay": Bound(0, DAY),
    "priority": Bound(0, 9),
    "max_concurrent": Bound(1, 1000),
    "quorum": Bound(1, 1000),
    "max_parallel": Bound(1, 1000),
    "jitter": Bound(0, DAY),
    "misfire_grace": Bound(0, 30 * DAY),
    "alert_if_missed": Bound(1, 30 * DAY),
    "alert_if_late": Bound(1, 30 * DAY),
}
AUTO = "auto"  # alert_if_longer: a factor over the job's usual (p95) duration


def _timezone(values: Mapping[str, Any]) -> str:
    return schedules.check_zone_name(values["timezone"])


def _schedule(values: Mapping[str, Any]) -> dict[str, Any]:
    zone = schedules.get_zone(values.get("timezone", DEFAULT_TIMEZONE))
    return schedules.normalize(values["schedule"], zone)


def _window(values: Mapping[str, Any]) -> dict[str, Any] | None:
    return schedules.normalize_window(values["window"])


def _moment(value: Any, name: str) -> Any:
    """A datetime within the dates a schedule may use (schedules.limits), or None."""
    if value is not None:
        schedules.check_instant(value, name)
    return value


def _start_at(values: Mapping[str, Any]) -> Any:
    return _moment(values["start_at"], "start_at")


def _end_at(values: Mapping[str, Any]) -> Any:
    start, end = values.get("start_at"), _moment(values["end_at"], "end_at")
    if start and end and end <= start:
        raise RuleError("must be later than start_at.")
    return end


def _condition(values: Mapping[str, Any]) -> str:
    condition = values["condition"]
    if not isinstance(condition, str):
        raise RuleError("must be a shell command (a string).")
    return program_text(condition, "the condition")


def _kind(values: Mapping[str, Any]) -> str:
    kind = values["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise RuleError(f'"{kind}" is not a valid choice; the kinds are {", ".join(KINDS)}.')
    return kind


def _payload(values: Mapping[str, Any]) -> dict[str, Any]:
    return KINDS[values.get("kind", DEFAULT_KIND)](values["payload"])


def _working_dir(values: Mapping[str, Any]) -> str:
    path = values["working_dir"]
    if not path:
        return ""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise RuleError("must be an absolute path.")
    return allowed_path(path)


def _queue(values: Mapping[str, Any]) -> str:
    queue = values["queue"]
    if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
        raise RuleError(
            "must be 1-64 letters, digits, '_', '-' or '.', the name of a worker queue."
        )
    return queue


def _env(values: Mapping[str, Any]) -> dict[str, Any]:
    """{"NAME": "value"} or {"NAME": {"value": "...", "secret": true}}."""
    env = values["env"]
    if not isinstance(env, dict):
        raise RuleError('must be an object such as {"NAME": "value"}.')
    if env and values.get("kind") == "celery":
        raise RuleError(
            "a celery job runs one of the app's own tasks with the app's settings; it takes "
            "no env (leave env empty)."
        )
    size = 0
    for name, item in env.items():
        size += _check_variable(name, item)
    limit = settings.SCHEDULER_MAX_ENV_BYTES
    if size > limit:
        raise RuleError(
            f"is {size} bytes (NAME=value, each); at most {limit} are allowed "
            "(SCHEDULER_MAX_ENV_BYTES)."
        )
    return env


def _check_variable(name: Any, item: Any) -> int:
    """The bytes the variable takes in the child's environment; RuleError if it is wrong."""
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
        raise RuleError(
            f"{str(name)[:60]!r} is not a valid variable name: use capital letters, digits "
            "and '_', not starting with a digit ([A-Z_][A-Z0-9_]*)."
        )
    if name in ENV_REFUSED or name.startswith(ENV_REFUSED_PREFIXES):
        raise RuleError(
            f"{name} is not allowed: it changes how the job's process starts (loader, "
            "interpreter and shell hooks, PATH) or is the scheduler's own (SCHEDULER_*). "
            "Set it inside the command instead."
        )
    if isinstance(item, dict):
        if not isinstance(item.get("value"), str) or set(item) - {"value", "secret"}:
            raise RuleError(f'{name}: use a string, or {{"value": "...", "secret": true}}.')
        value = item["value"]
        if item.get("secret") and len(value) < MIN_SECRET_LENGTH:
            raise RuleError(
                f"{name}: a secret must be at least {MIN_SECRET_LENGTH} characters; a "
                "shorter one would be masked wherever its characters appear in the output."
            )
    elif isinstance(item, str):
        value = item
    else:
        raise RuleError(f"{name}: Not a valid string.")
    multi_line(value, f"{name}: the value")
    size = len(name.encode()) + len(value.encode()) + 2  # NAME=value and its NUL
    if size > MAX_ARG_STRLEN:
        raise RuleError(f"{name}: longer than {MAX_ARG_STRLEN - 2} bytes, more than Linux passes.")
    return size


def mask_env(env: Any) -> Any:
    """``env`` as it is shown (the API, the admin, the audit log): each secret as ***."""
    if not isinstance(env, dict):
        return env
    return {
        name: {"value": MASK, "secret": True}
        if isinstance(item, dict) and item.get("secret")
        else item
        for name, item in env.items()
    }


def mask_defaults(defaults: Any) -> Any:
    """A template's defaults as shown: the secrets of its env as ***."""
    if not isinstance(defaults, dict) or "env" not in defaults:
        return defaults
    return {**defaults, "env": mask_env(defaults["env"])}


def clean_defaults_env(defaults: dict[str, Any], stored: Any) -> dict[str, Any]:
    """A template's defaults, its env judged as a job's (it is stored encrypted: its form
    must be right before) and each secret sent back as *** given its stored value."""
    if "env" not in defaults:
        return defaults
    stored_env = stored.get("env") if isinstance(stored, dict) else None
    env = clean_job({"env": keep_secrets(defaults["env"], stored_env)})["env"]
    return {**defaults, "env": env}


def keep_secrets(env: Any, stored: Any) -> Any:
    """``env`` with each secret sent back as *** (as the API shows it) given its stored value."""
    if not isinstance(env, dict) or not isinstance(stored, dict):
        return env
    return {
        name: stored[name]
        if isinstance(item, dict) and item.get("value") == MASK and name in stored
        else item
        for name, item in env.items()
    }


def _strings(value: Any, what: str, most: int | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RuleError(f"must be a list of {what}.")
    if most is not None and len(value) > most:
        raise RuleError(f"must be a list of at most {most} {what}.")
    return value


def _name(values: Mapping[str, Any]) -> str:
    """One line: it heads e-mail subjects and webhook bodies (a CR/LF there would be a
    header a user smuggled into our mail)."""
    name = values["name"]
    if not isinstance(name, str):
        raise RuleError("must be a string.")
    return one_line(name, "the name")


def _tags(values: Mapping[str, Any]) -> list[str]:
    tags = _strings(values["tags"], "strings")
    for tag in tags:
        if not tag.strip() or len(tag) > MAX_TAG_LENGTH:
            raise RuleError(f"each tag must be 1-{MAX_TAG_LENGTH} characters; {tag!r} is not.")
    return tags


def _valid(check: Callable[[str], None], value: str, what: str) -> None:
    try:
        check(value)
    except ValidationError:
        raise RuleError(f"{value!r} is not a valid {what}.") from None


def _notify_emails(values: Mapping[str, Any]) -> list[str]:
    emails = _strings(values["notify_emails"], "e-mail addresses", MAX_EMAILS)
    for email in emails:
        _valid(validate_email, email, "e-mail address")
    return emails


def _notify_webhooks(values: Mapping[str, Any]) -> list[str]:
    urls = _strings(values["notify_webhooks"], "URLs", MAX_WEBHOOKS)
    for url in urls:
        _valid(_webhook_url, url, "http:// or https:// URL")
        # A literal address (or localhost) is judged now; other names when one is sent.
        if refusal := egress.check_url(url):
            raise RuleError(f"{url}: {refusal}")
    return urls


def _notify_on(values: Mapping[str, Any]) -> list[str]:
    events = _strings(values["notify_on"], "events")
    for event in events:
        if event not in NOTIFY_EVENTS:
            raise RuleError(
                f'"{event}" is not a valid choice; the events are {", ".join(NOTIFY_EVENTS)}.'
            )
    return events


def _bounded(name: str, values: Mapping[str, Any]) -> int | None:
    return BOUNDS[name].check(values[name])


def _alert_if_missed(values: Mapping[str, Any]) -> int | None:
    grace = _bounded("alert_if_missed", values)
    if grace is not None and values.get("schedule", {}).get("type") == "manual":
        raise RuleError("a manual job has no slots to miss; give it a schedule, or leave this out.")
    return grace


def _alert_if_longer(values: Mapping[str, Any]) -> int | str | None:
    value = values["alert_if_longer"]
    if value is None or value == AUTO:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 30 * DAY:
        raise RuleError(f'must be a number of seconds from 1 to {30 * DAY}, or "{AUTO}".')
    return value


TARGET_KEYS = ("nodes", "groups", "labels")
TARGET_MODES = ("any", "each")
MAX_TARGET_NAMES = 500


def _targets(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """{"nodes": [names], "groups": [names], "labels": "selector"}, each optional; the
    names are checked against the nodes and groups by the API (scheduler_app/nodes.py)."""
    targets = values["targets"]
    if targets is None or targets == {}:
        return None
    if not isinstance(targets, dict):
        raise RuleError('must be an object: {"nodes": [...], "groups": [...], "labels": "..."}.')
    if unknown := sorted(set(targets) - set(TARGET_KEYS)):
        raise RuleError(f"unknown key {unknown[0]!r}; the keys are {', '.join(TARGET_KEYS)}.")
    clean: dict[str, Any] = {}
    for key in ("nodes", "groups"):
        if key in targets:
            try:
                names = _strings(targets[key], f"{key[:-1]} names", MAX_TARGET_NAMES)
            except RuleError as exc:
                raise RuleError(f"{key}: {exc}") from None
            clean[key] = list(dict.fromkeys(names))
    if "labels" in targets:
        if not isinstance(targets["labels"], str):
            raise RuleError('labels must be a selector string, like "role=db,zone in (eu,us)".')
        try:
            selectors.parse(targets["labels"])
        except selectors.SelectorError as exc:
            raise RuleError(f"labels: {exc}") from None
        clean["labels"] = targets["labels"].strip()
    if not any(clean.values()):
        raise RuleError("name at least one node, group or label selector (or leave it null).")
    if values.get("fan_out"):
        raise RuleError("targets and fan_out exclude each other; targets run on each node "
                        "they name (target_mode each).")  # fmt: skip
    return clean


def _target_mode(values: Mapping[str, Any]) -> str:
    if values["target_mode"] not in TARGET_MODES:
        raise RuleError(f"must be one of {', '.join(TARGET_MODES)}.")
    return values["target_mode"]


@dataclass(frozen=True)
class Rule:
    """``check`` returns ``field``'s value normalised, or raises saying why it is wrong.

    ``reads`` are the other fields the check reads: the rule is judged again
    when one of them changes, and not judged while one of them is wrong.
    """

    field: str
    check: Callable[[Mapping[str, Any]], Any]
    reads: tuple[str, ...] = ()


RULES = (
    Rule("timezone", _timezone),
    Rule("schedule", _schedule, reads=("timezone",)),
    Rule("window", _window),
    Rule("start_at", _start_at),
    Rule("end_at", _end_at, reads=("start_at",)),
    Rule("kind", _kind),
    Rule("payload", _payload, reads=("kind",)),
    Rule("working_dir", _working_dir),
    Rule("condition", _condition),
    Rule("queue", _queue),
    Rule("targets", _targets, reads=("fan_out",)),
    Rule("target_mode", _target_mode),
    Rule("env", _env, reads=("kind",)),
    Rule("name", _name),
    Rule("tags", _tags),
    Rule("notify_emails", _notify_emails),
    Rule("notify_webhooks", _notify_webhooks),
    Rule("notify_on", _notify_on),
    Rule("alert_if_missed", _alert_if_missed, reads=("schedule",)),
    Rule("alert_if_longer", _alert_if_longer),
    *(Rule(name, partial(_bounded, name)) for name in BOUNDS if name != "alert_if_missed"),
)
# The fields the rules read, which ``values_of`` takes from a saved job.
RULED_FIELDS = tuple(dict.fromkeys(name for rule in RULES for name in (rule.field, *rule.reads)))


def values_of(job: object) -> dict[str, Any]:
    """The values the rules read, from a job (or anything with the job's attributes)."""
    return {name: getattr(job, name) for name in RULED_FIELDS}


def clean_job(data: Mapping[str, Any], stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``data`` with its values normalised; JobRulesError naming every field that breaks a rule.

    ``data`` holds the job's fields as given (for an update: the new values over
    the stored ones); a field missing from it is not judged (its default applies).
    ``stored`` holds the saved job's values, None for a new job: a value left as
    it was is not judged again (a one-time schedule that has since passed stays
    valid), and a secret sent back as *** keeps its stored value.
    """
    values = dict(data)
    if stored is not None and "env" in values:
        values["env"] = keep_secrets(values["env"], stored.get("env"))
    errors: dict[str, list[str]] = {
        name: [problem] for name, value in values.items() if (problem := nul_problem(value))
    }
    for rule in RULES:
        if rule.field not in values or rule.field in errors:
            continue
        if not _to_judge(rule, values, stored, errors):
            continue
        try:
            values[rule.field] = rule.check(values)
        except (RuleError, PayloadError, schedules.ScheduleError) as exc:
            errors[rule.field] = [str(exc)]
    if errors:
        raise JobRulesError(errors)
    return values


def nul_problem(value: Any) -> str:
    """Why ``value`` (any JSON: strings, lists, objects) cannot be stored or run, or ''.

    A NUL character is valid in no field: no program can be given it (argv and the
    environment are C strings) and PostgreSQL cannot store it. Walked without
    recursion, so no nesting can overflow the stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return f"must not contain a NUL character (\\u0000); found one in {item[:40]!r}."
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return ""


def _to_judge(
    rule: Rule,
    values: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    errors: Mapping[str, list[str]],
) -> bool:
    if any(name in errors for name in rule.reads):
        return False
    if stored is None:
        return True
    return any(values.get(name) != stored.get(name) for name in (rule.field, *rule.reads))
