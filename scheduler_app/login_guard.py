"""The failed-login backoff per account, for every way of logging in with a password
(the API's token endpoint, the admin's login form): it sits in the authentication
backend, so nothing that checks a password goes around it.

After ``LOGIN_FAILURE_LIMIT`` failures for a username the account is locked for
``LOGIN_LOCKOUT_SECONDS``; each further failure doubles the lock, up to
``LOGIN_LOCKOUT_MAX_SECONDS``. While locked, no password is checked (the right one is
refused too, so a lock tells a guesser nothing). A success forgets the failures; so
does ``LOGIN_LOCKOUT_MAX_SECONDS`` without one after the last lock ends. Usernames that
do not exist are counted the same, so the lock does not tell who has an account.

The counts live in Django's cache (Redis, shared by every web process). A count is
taken *before* the password is checked (an atomic increment), so guesses sent in
parallel cannot all slip in before the first failure is recorded: past the limit,
only one guess at a time gets through, the one that sets the next lock.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError


class Locked(Exception):
    """The account is locked for ``seconds`` more."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"locked for {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Attempt:
    account: str  # the hashed, case-folded username: the cache keys' suffix
    number: int  # this attempt's place among the account's failures so far (1-based)


def account_key(username: str) -> str:
    """A fixed-length key for a username; case-folded, so "Alice" counts as "alice"."""
    return hashlib.sha256(username.casefold().encode()).hexdigest()[:32]


def _keys(account: str) -> tuple[str, str]:
    return f"login:failures:{account}", f"login:locked:{account}"


def lock_seconds(failures: int) -> int:
    """How long the ``failures``-th failure locks the account (0: not at all)."""
    over = failures - settings.LOGIN_FAILURE_LIMIT
    if over < 0:
        return 0
    base, cap = settings.LOGIN_LOCKOUT_SECONDS, settings.LOGIN_LOCKOUT_MAX_SECONDS
    return min(cap, base * 2 ** min(over, 32))


def locked_for(username: str) -> int:
    """Seconds the account stays locked; 0 when it is not."""
    _, lock_key = _keys(account_key(username))
    until = cache.get(lock_key)
    return max(1, int(until - time.time() + 0.999)) if until and until > time.time() else 0


def _lock(lock_key: str, seconds: int, *, only_if_free: bool) -> bool:
    until = time.time() + seconds
    if only_if_free:
        return cache.add(lock_key, until, seconds)
    cache.set(lock_key, until, seconds)
    return True


def _memory(failures: int) -> int:
    """How long an account's failures are remembered after the last one."""
    return lock_seconds(failures) + settings.LOGIN_LOCKOUT_MAX_SECONDS


def begin(username: str) -> Attempt:
    """Take the next attempt for ``username``, or raise :class:`Locked`."""
    account = account_key(username)
    if settings.LOGIN_FAILURE_LIMIT <= 0:  # the backoff is off
        return Attempt(account, 0)
    failures_key, lock_key = _keys(account)
    wait = locked_for(username)
    if wait:
        raise Locked(wait)
    cache.add(failures_key, 0, _memory(0))
    try:
        number = cache.incr(failures_key)
    except ValueError:  # expired between the add and the incr
        cache.add(failures_key, 1, _memory(1))
        number = 1
    cache.touch(failures_key, _memory(number))
    # Past the limit, this guess sets the next lock before its password is checked, and
    # only the guess that sets it goes ahead (a success lifts it again).
    past_limit = number > settings.LOGIN_FAILURE_LIMIT
    if past_limit and not _lock(lock_key, lock_seconds(number), only_if_free=True):
        cache.decr(failures_key)
        raise Locked(locked_for(username) or 1)
    return Attempt(account, number)


def failed(attempt: Attempt) -> None:
    """The attempt's password was wrong: the limit-th failure locks the account."""
    if attempt.number and attempt.number == settings.LOGIN_FAILURE_LIMIT:
        _, lock_key = _keys(attempt.account)
        _lock(lock_key, lock_seconds(attempt.number), only_if_free=False)


def succeeded(attempt: Attempt) -> None:
    cache.delete_many(list(_keys(attempt.account)))


def reset(username: str) -> None:
    """Forget an account's failures and lift its lock (an administrator's unlock)."""
    cache.delete_many(list(_keys(account_key(username))))


class LockoutModelBackend(ModelBackend):
    """Django's username-and-password backend behind the per-account backoff.

    A refused attempt raises PermissionDenied, which makes ``authenticate()`` give up
    (and send ``user_login_failed``) without trying another backend; the seconds left
    are put on the request as ``login_locked_for`` for a view to answer 429 with them.
    """

    def authenticate(
        self,
        request: Any,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            attempt = begin(str(username))
        except Locked as locked:
            if request is not None:
                request.login_locked_for = locked.seconds
            raise PermissionDenied(str(locked)) from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            failed(attempt)
        else:
            succeeded(attempt)
        return user


def locked_message(seconds: int) -> str:
    return f"Too many failed logins for this account. Try again in {seconds} seconds."


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form, saying so when the account is locked (config/urls.py)."""

    def get_invalid_login_error(self) -> ValidationError:
        seconds = getattr(self.request, "login_locked_for", None)
        if seconds:
            return ValidationError(locked_message(seconds), code="locked")
        return super().get_invalid_login_error()
