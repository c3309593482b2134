"""The Celery application: configured from Django settings (namespace CELERY)."""

from __future__ import annotations

import os
import re
from typing import Any

from celery import Celery
from celery.utils.serialization import jsonify, strtobool
from celery.worker.control import inspect_command
from kombu.utils.encoding import safe_repr

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@app.on_after_configure.connect
def name_redbeat_keys(sender: Celery, **kwargs: Any) -> None:
    """RedBeat asks whether its keys are set by their bare names, which a namespaced
    configuration does not list: without this every process that reads the schedule
    warns that it falls back to the broker's URL (it does not; the values are read)."""
    sender.conf.update(
        redbeat_redis_url=sender.conf.redbeat_redis_url,
        redbeat_redis_options=sender.conf.redbeat_redis_options,
    )


# The password in a URL: "scheme://user:PASSWORD@" (the user may be empty, as in Redis's).
URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]+@")


def mask_passwords(value: Any) -> Any:
    """``value`` with the password of every URL in it masked, in nested dicts and lists."""
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\g<head>********@", value)
    if isinstance(value, dict):
        return {key: mask_passwords(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_passwords(item) for item in value]
    return value


# A worker's `conf` and `report` (Flower's worker page, `celery inspect`) showed every
# Django setting, masked only where a key looks secret: REDIS_URL's password went out,
# and so did secrets no key names (a webhook's token in its path). These two replace
# Celery's own (the same names, registered after them): Celery's settings only, every
# URL's password masked.
def celery_settings(table: dict[str, Any]) -> dict[str, Any]:
    """Celery's own settings of a configuration table (CELERY_*, or lower case), not
    the rest of Django's."""
    return {key: value for key, value in table.items()
            if isinstance(key, str) and (key.startswith("CELERY_") or key.islower())}  # fmt: skip


@inspect_command(
    name="conf",
    alias="dump_conf",
    signature="[include_defaults=False]",
    args=[("with_defaults", strtobool)],
)
def conf(state: Any, with_defaults: bool = False, **kwargs: Any) -> Any:
    """List Celery's configuration, every URL's password masked."""
    table = mask_passwords(celery_settings(state.app.conf.table(with_defaults=with_defaults)))
    return jsonify(
        table,
        keyfilter=lambda key: isinstance(key, str) and not key.startswith("__"),
        unknown_type_filter=safe_repr,
    )


@inspect_command(name="report")
def report(state: Any) -> dict[str, str]:
    """Versions, platform and transport for bug reports (not the settings), masked."""
    versions = state.app.bugreport().strip().split("\n\n")[0]
    return {"ok": mask_passwords(versions)}
