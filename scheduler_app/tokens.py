"""API tokens (DRF's authtoken, one per user): issued at login, rotated, revoked, and
expired after ``API_TOKEN_TTL`` seconds (0: never). Every token of a user goes when
their password changes (scheduler_app/signals.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token


def expired(token: Token) -> bool:
    ttl = settings.API_TOKEN_TTL
    return bool(ttl) and token.created + timedelta(seconds=ttl) <= timezone.now()


@transaction.atomic
def issue(user: Any) -> Token:
    """The user's token for a login: the one they have, or a new one if it expired."""
    token, created = Token.objects.select_for_update().get_or_create(user=user)
    if not created and expired(token):
        token.delete()
        token = Token.objects.create(user=user)
    return token


@transaction.atomic
def rotate(user: Any) -> Token:
    """A new token for the user; the old one stops working."""
    revoke_all(user)
    return Token.objects.create(user=user)


def revoke_all(user: Any) -> int:
    """Delete the user's tokens; how many went."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted
