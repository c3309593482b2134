"""`manage.py rotate_secret_key`: every stored secret env value encrypted again under the
first key of SECRET_ENCRYPTION_KEY, so the keys after it can be dropped (README, Secrets)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from scheduler_app.encryption import is_secret
from scheduler_app.models import Job, JobTemplate

# The model, its field, and where the env lies in the field's value ("": the value).
ENV_FIELDS = [(Job, "env", ""), (JobTemplate, "defaults", "env")]


def has_secret(value: Any, key: str) -> bool:
    env = value.get(key) if key and isinstance(value, dict) else value
    return isinstance(env, dict) and any(is_secret(item) for item in env.values())


class Command(BaseCommand):
    help = "Encrypt every secret env value again under the first SECRET_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        for model, name, key in ENV_FIELDS:
            rows = 0
            # Read: decrypted with any key; written: encrypted with the first (the field).
            for pk, value in model._base_manager.values_list("pk", name).iterator():
                if has_secret(value, key):
                    with transaction.atomic():
                        model._base_manager.filter(pk=pk).update(**{name: value})
                    rows += 1
            self.stdout.write(f"{model._meta.verbose_name_plural}: {rows} re-encrypted")
