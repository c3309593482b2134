"""Keep RedBeat in step with the Job table, whoever saves or deletes a job (API, admin,
shell): see :func:`scheduler_app.redbeat.sync_after_commit`."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from scheduler_app import redbeat
from scheduler_app.models import Job


@receiver(post_save, sender=Job)
def job_saved(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    redbeat.sync_after_commit(instance.id)


@receiver(post_delete, sender=Job)
def job_deleted(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    redbeat.sync_after_commit(instance.id)
