"""System checks for settings that would break at run time."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


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
