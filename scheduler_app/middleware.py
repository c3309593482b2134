"""A database that is away (restarting, unreachable, locked too long) is a 503 the
client can try again after, with a JSON body, not a 500 with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER = 10  # seconds


class DatabaseAwayMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("the database is away: %s %s: %s", request.method, request.path, exception)
        body = {
            "detail": "The database is not answering. Try again shortly.",
            "retry_after": RETRY_AFTER,
        }
        return JsonResponse(body, status=503, headers={"Retry-After": str(RETRY_AFTER)})
