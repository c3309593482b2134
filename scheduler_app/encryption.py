"""Secret env values at rest: encrypted in the database with Fernet, clear in memory.

A job's ``env`` (and a template's ``defaults["env"]``) holds ``{"NAME": "value"}`` or
``{"NAME": {"value": "...", "secret": true}}``. In the database a secret is
``{"secret": true, "encrypted": "<Fernet token>"}``: :class:`SecretEnvField` seals it
when the row is written and opens it when the row is read, so the code that runs a
job sees the clear value and nothing else changes.

The keys are ``SECRET_ENCRYPTION_KEY``, comma-separated: the first encrypts, every one
decrypts (``MultiFernet``), so a key is rotated by putting a new one first, running
``manage.py rotate_secret_key`` (every secret re-encrypted under the first key), then
dropping the old one. Unset: the key kept in ``var/secret-encryption-key`` (mode 0600),
made on first need when DEBUG is on (``make run``); with DEBUG off it must be set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

KEY_FILE = "secret-encryption-key"


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret no configured key decrypts: its key was dropped too soon."""


def key_file() -> Path:
    return Path(settings.VAR_DIR) / KEY_FILE


def ensure_key_file() -> Path:
    """The key file, made (mode 0600 from the start) with a new key if there is none."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # made before, or by another process at the same moment
    with os.fdopen(fd, "w") as file:
        file.write(Fernet.generate_key().decode() + "\n")
    return path


@functools.cache
def _file_key(path: str) -> str:
    return Path(path).read_text().strip()


def configured_keys() -> tuple[str, ...]:
    """SECRET_ENCRYPTION_KEY's keys, else the key file's (made when DEBUG is on)."""
    if settings.SECRET_ENCRYPTION_KEY:
        return tuple(settings.SECRET_ENCRYPTION_KEY)
    path = key_file()
    if not path.exists():
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "SECRET_ENCRYPTION_KEY is not set: secret env values are encrypted with it. "
                "Make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
        ensure_key_file()
    return (_file_key(str(path)),)


@functools.cache
def _box(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "SECRET_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
            f"comma-separated: {exc}"
        ) from None


def box() -> MultiFernet:
    return _box(configured_keys())


def encrypt(text: str) -> str:
    return box().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A secret env value in the database is not readable with any key of "
            "SECRET_ENCRYPTION_KEY: the key it was encrypted with is missing. Put it back "
            "(after the new one), run `manage.py rotate_secret_key`, then drop it."
        ) from None


def is_secret(item: Any) -> bool:
    return isinstance(item, dict) and bool(item.get("secret"))


def seal_env(env: dict[str, Any]) -> dict[str, Any]:
    """``env`` as stored: each clear secret value encrypted."""
    return {
        name: {"secret": True, "encrypted": encrypt(item["value"])}
        if is_secret(item) and isinstance(item.get("value"), str)
        else item
        for name, item in env.items()
    }


def open_env(env: dict[str, Any]) -> dict[str, Any]:
    """``env`` as read: each encrypted secret value decrypted."""
    return {
        name: {"value": decrypt(item["encrypted"]), "secret": True}
        if is_secret(item) and isinstance(item.get("encrypted"), str)
        else item
        for name, item in env.items()
    }


class SecretEnvField(models.JSONField):
    """A JSON field holding env variables whose secret values are stored encrypted: the
    field's value itself, or its ``env_key`` entry (a template's defaults hold "env")."""

    def __init__(self, *args: Any, env_key: str = "", **kwargs: Any) -> None:
        self.env_key = env_key
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.env_key:
            kwargs["env_key"] = self.env_key
        return name, path, args, kwargs

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return self.apply(super().from_db_value(value, expression, connection), open_env)

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        return super().get_db_prep_save(self.apply(value, seal_env), connection)

    def apply(self, value: Any, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
        """``value`` with ``change`` made to its env (none where there is no env)."""
        if not isinstance(value, dict):
            return value
        if not self.env_key:
            return change(value)
        env = value.get(self.env_key)
        return {**value, self.env_key: change(env)} if isinstance(env, dict) else value
