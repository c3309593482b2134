"""How the API tells who is calling (tokens that expire) and how it slows down password
guessing at the token endpoint: per client address and per username, whatever other
credentials the request carries (the per-account backoff is scheduler_app/login_guard.py).

The client address is REMOTE_ADDR, or taken from X-Forwarded-For only as far as
``TRUSTED_PROXY_COUNT`` proxies in front of us vouch for it (DRF's NUM_PROXIES): a client
cannot pick its own address by sending the header.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from scheduler_app import login_guard, tokens


class ExpiringTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; a token older than API_TOKEN_TTL is refused (401)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(key)
        if tokens.expired(token):
            token.delete()
            raise exceptions.AuthenticationFailed(
                "Token has expired. Log in again (POST /api/v1/auth/token/) for a new one."
            )
        return user, token


class WindowThrottle(SimpleRateThrottle):
    """A rate counted in fixed windows of its period: one counter per caller and window,
    so a request costs one add and one increment in the cache (Redis), whatever the
    rate. DRF's own keeps every request's time in a list it reads and writes back whole
    at each request: at 6000/minute, tens of kilobytes each way, on every API call."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None or (key := self.get_cache_key(request, view)) is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        counter = f"{key}:{window}"
        self.cache.add(counter, 0, self.duration)
        try:
            count = self.cache.incr(counter)
        except ValueError:  # the window's counter expired between the two calls
            self.cache.add(counter, 1, self.duration)
            count = 1
        self.wait_seconds = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self) -> float:
        return self.wait_seconds


class AnonThrottle(WindowThrottle, AnonRateThrottle):
    """Requests per client address without a login (API_ANON_RATE)."""


class UserThrottle(WindowThrottle, UserRateThrottle):
    """Requests per signed-in user (API_USER_RATE)."""


class LoginAddressThrottle(WindowThrottle):
    """Login attempts per client address (API_LOGIN_RATE), signed in or not."""

    scope = "login"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginAccountThrottle(WindowThrottle):
    """Login attempts per username (API_LOGIN_ACCOUNT_RATE), from any address."""

    scope = "login_account"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        # As the login's serializer reads it (a number is a string; spaces are trimmed),
        # so no spelling of a username has a count of its own.
        if isinstance(username, bool) or not isinstance(username, str | int | float):
            return None  # nothing to guess at: the serializer refuses it
        ident = login_guard.account_key(str(username).strip())
        return self.cache_format % {"scope": self.scope, "ident": ident}
