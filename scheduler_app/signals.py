"""Keep RedBeat in step with the Job table, whoever changes it (API, admin, shell).

The sync runs after the commit, so Redis never holds a schedule the database
rolled back. If Redis is down at that moment the change is still safe in the
database; beat's reconcile at start (or ``manage.py sync_schedules``) repairs it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from scheduler_app import redbeat
from scheduler_app.models import Job

logger = logging.getLogger(__name__)


def _sync_after_commit(job_id: int) -> None:
    def sync() -> None:
        try:
            redbeat.sync_job(job_id)
        except Exception:
            logger.exception(
                "could not update the schedule of job %s in Redis; it is saved in the "
                "database and `manage.py sync_schedules` will restore it",
                job_id,
            )

    transaction.on_commit(sync)


@receiver(post_save, sender=Job)
def job_saved(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    _sync_after_commit(instance.id)


@receiver(post_delete, sender=Job)
def job_deleted(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    _sync_after_commit(instance.id)
