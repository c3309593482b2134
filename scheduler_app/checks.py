"""System checks for settings that would break at run time."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from scheduler_app import egress, encryption, identity
from scheduler_app.payloads import MAX_ARG_STRLEN, PayloadError, allowed_path


@register()
def visibility_timeout_covers_jobs(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Tasks acknowledge after the run: a shorter visibility timeout would run a job twice."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if visibility <= settings.SCHEDULER_MAX_TIMEOUT:
        return [
            Error(
                f"CELERY_VISIBILITY_TIMEOUT ({visibility} s) must exceed SCHEDULER_MAX_TIMEOUT "
                f"({settings.SCHEDULER_MAX_TIMEOUT} s), the longest job timeout allowed; "
                "otherwise Redis hands a long run to a second worker.",
                id="scheduler_app.E001",
            )
        ]
    return []


@register()
def heartbeat_timeout_spans_flushes(app_configs: Any, **kwargs: Any) -> list[Error]:
    """A heartbeat is written with each output flush: a timeout of fewer than three
    flushes would take a busy but healthy run for a dead one."""
    flush, timeout = settings.SCHEDULER_LOG_FLUSH_SECONDS, settings.SCHEDULER_HEARTBEAT_TIMEOUT
    if timeout < 3 * flush:
        return [
            Error(
                f"SCHEDULER_HEARTBEAT_TIMEOUT ({timeout} s) must be at least three times "
                f"SCHEDULER_LOG_FLUSH_SECONDS ({flush} s), how often a running job's "
                "worker writes its heartbeat; otherwise healthy runs are marked lost.",
                id="scheduler_app.E002",
            )
        ]
    return []


@register()
def scheduler_down_outlasts_a_takeover(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """A standby beat takes over when the leader's lock expires: a shorter SCHEDULER_DOWN_AFTER
    would tell the admins the scheduler is down at every ordinary takeover."""
    takeover = settings.CELERY_REDBEAT_LOCK_TIMEOUT + settings.CELERY_BEAT_MAX_LOOP_INTERVAL
    down_after = settings.SCHEDULER_DOWN_AFTER
    if down_after <= takeover:
        return [
            Warning(
                f"SCHEDULER_DOWN_AFTER ({down_after} s) is no longer than a "
                f"standby beat's takeover (REDBEAT_LOCK_TIMEOUT + BEAT_MAX_LOOP_INTERVAL, "
                f"{takeover} s): every takeover will raise a scheduler_down alert.",
                id="scheduler_app.W001",
            )
        ]
    return []


@register()
def http_allow_list_parses(app_configs: Any, **kwargs: Any) -> list[Error]:
    """An allow-list entry the egress guard cannot read would be ignored at every request:
    say so at start instead."""
    problems = []
    for entry in settings.SCHEDULER_HTTP_ALLOW:
        try:
            egress.parse_entry(entry)
        except ValueError as exc:
            problems.append(
                Error(
                    f"SCHEDULER_HTTP_ALLOW: {exc}. Use addresses or networks (127.0.0.1, "
                    "10.0.0.0/8, ::1) or host names (localhost), each with an optional :port.",
                    id="scheduler_app.E003",
                )
            )
    return problems


@register()
def admin_webhook_is_reachable(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """The admins' webhook goes through the egress guard like any other: one it refuses
    (an inside address not in SCHEDULER_HTTP_ALLOW) would tell nobody the scheduler is down."""
    hook = settings.SCHEDULER_ADMIN_WEBHOOK
    if hook and (refusal := egress.check_url(hook)):
        return [Warning(f"SCHEDULER_ADMIN_WEBHOOK {hook}: {refusal}", id="scheduler_app.W002")]
    return []


@register()
def job_limits_fit_a_command_line(app_configs: Any, **kwargs: Any) -> list[Error]:
    """The job sizes the rules allow must be ones Linux can pass to a child process, or
    "Argument list too long" comes back at run time for a job that was accepted."""
    command, env = settings.SCHEDULER_MAX_COMMAND_BYTES, settings.SCHEDULER_MAX_ENV_BYTES
    errors = []
    if command >= MAX_ARG_STRLEN:
        errors.append(
            Error(
                f"SCHEDULER_MAX_COMMAND_BYTES ({command}) must be less than {MAX_ARG_STRLEN}, "
                "the longest single argument Linux passes to a program.",
                id="scheduler_app.E004",
            )
        )
    arg_max = _arg_max()
    if arg_max and command + env + CHILD_OVERHEAD > arg_max:
        errors.append(
            Error(
                f"SCHEDULER_MAX_COMMAND_BYTES + SCHEDULER_MAX_ENV_BYTES ({command} + {env}) "
                f"and the child's own arguments and environment ({CHILD_OVERHEAD}) must fit "
                f"in this system's ARG_MAX ({arg_max}).",
                id="scheduler_app.E005",
            )
        )
    return errors


@register()
def job_code_runs_unprivileged(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    """Workers refuse to run job code as root (and say so in their log); a worker that
    cannot switch users runs it as itself, which can read the worker's files."""
    try:
        who = identity.run_as()
    except identity.IdentityError as exc:
        return [Error(f"Workers will refuse to run job code: {exc}", id="scheduler_app.E006")]
    if identity.shares_worker_identity():
        return [
            Warning(
                f"Job code runs as this process's own user {who.name}, so it can read what "
                "the worker reads (the database, var/, the settings). Start workers as root: "
                "they run job code as SCHEDULER_RUN_AS (default nobody).",
                id="scheduler_app.W003",
            )
        ]
    return []


@register(deploy=True)
def redis_has_a_password(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Without one, any process that reaches Redis (a job's included) can send the
    worker's internal tasks, such as starting another user's job."""
    if not urlsplit(settings.REDIS_URL).password:
        return [
            Warning(
                "REDIS_URL has no password: a job's code could send tasks to the workers "
                "through Redis. Give Redis a password (requirepass) and put it in REDIS_URL "
                "(redis://:PASSWORD@host:6379/0).",
                id="scheduler_app.W004",
            )
        ]
    return []


# Room for what the child gets besides the job's command and env: the interpreter's
# path and flags, PATH, HOME, LANG..., the SCHEDULER_* variables, pointers.
CHILD_OVERHEAD = 64 * 1024


def _arg_max() -> int:
    try:
        return os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError, AttributeError):
        return 0


@register()
def secret_encryption_keys_usable(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Secret env values are encrypted with these keys: a missing or malformed key is
    found at start, not at the first job saved or read."""
    try:
        encryption.box()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="scheduler_app.E010")]
    return []


@register()
def software_dir_is_allowed(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """``software`` jobs install pip packages in SCHEDULER_SOFTWARE_DIR, which must lie in
    SCHEDULER_ALLOWED_DIRS: said at start, not at the first such run."""
    problem = "it is not set, and SCHEDULER_ALLOWED_DIRS is empty."
    if settings.SCHEDULER_SOFTWARE_DIR:
        try:
            allowed_path(settings.SCHEDULER_SOFTWARE_DIR)
            return []
        except PayloadError as exc:
            problem = str(exc)
    return [Warning(f"SCHEDULER_SOFTWARE_DIR: {problem} Software jobs with pip packages will "
                    "fail on this worker.", id="scheduler_app.W020")]  # fmt: skip
