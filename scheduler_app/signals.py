"""Keep RedBeat in step with the Job table, whoever saves or deletes a job (API, admin,
shell): see :func:`scheduler_app.redbeat.sync_after_commit`. An uploaded file's bytes
go from the storage when its row is deleted, by any path (the API, the admin, a
deleted owner's cascade), after the commit. And a user's API tokens go
when their password changes, and their jobs pause when they are deactivated, whoever
does it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from scheduler_app import deployment, redbeat, teams, tokens
from scheduler_app.models import Job, StoredFile


@receiver(post_save, sender=Job)
def job_saved(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    redbeat.sync_after_commit(instance.id)


@receiver(post_delete, sender=Job)
def job_deleted(sender: type[Job], instance: Job, **kwargs: Any) -> None:
    redbeat.sync_after_commit(instance.id)


@receiver(post_delete, sender=StoredFile)
def stored_file_deleted(sender: type[StoredFile], instance: StoredFile, **kwargs: Any) -> None:
    deployment.forget_after_commit(instance)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def user_saving(sender: type[Any], instance: Any, raw: bool, update_fields: Any, **kwargs: Any):
    """Note a password change: the stored hash differs from the one being saved. Every
    path goes through a save (set_password(), the admin's and Django's password forms,
    ``changepassword``, an assigned hash); one query, only when the password may change.

    Not a change: Django rehashing the same password at a login (a hasher upgrade), which
    saves ``update_fields=["password"]`` after clearing the raw password it had set."""
    instance._password_changed = False
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    rehash = update_fields is not None and set(update_fields) == {"password"}
    if rehash and getattr(instance, "_password", "") is None and instance.has_usable_password():
        return  # check_password()'s (an unusable password is never a rehash)
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True)
    instance._password_changed = stored.first() not in (None, instance.password)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_saved(sender: type[Any], instance: Any, **kwargs: Any) -> None:
    if getattr(instance, "_password_changed", False):
        instance._password_changed = False
        tokens.revoke_all(instance)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def user_deactivating(sender: type[Any], instance: Any, raw: bool, **kwargs: Any) -> None:
    """Note a deactivation (is_active from true to false), by any path that saves the user
    (the admin, the API, the ORM); one query, only when the user being saved is inactive.
    A bulk ``update(is_active=False)`` sends no signal: it pauses nothing."""
    instance._deactivated = False
    if raw or instance._state.adding or instance.is_active:
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("is_active", flat=True)
    instance._deactivated = bool(stored.first())


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_deactivated(sender: type[Any], instance: Any, **kwargs: Any) -> None:
    if getattr(instance, "_deactivated", False):
        instance._deactivated = False
        teams.pause_jobs_of_deactivated(instance)
