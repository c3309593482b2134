"""Failures answered with a JSON body, not an HTML page or a traceback: a database
that is away (restarting, unreachable, locked too long) is a 503 the client can try
again after; a request body too large to read is a 413."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.response import Response

from scheduler_app import audit

logger = logging.getLogger(__name__)

RETRY_AFTER = 10  # seconds
API_PREFIX = "/api/v1/"


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


FILES_PATH = "/api/v1/files/"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small fields beside a file


class BodyTooLargeMiddleware:
    """A request body over DATA_UPLOAD_MAX_MEMORY_SIZE (API_MAX_BODY_BYTES) is a 413 with
    a JSON message, for the API and the admin alike: refused by its Content-Length
    before anything reads it, or when Django's own check fires (a form's fields)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Every kind of body, multipart too: Django counts a multipart body's files
        # against no limit. The one place that takes a file (POST /api/v1/files/) has its
        # own limit, which its upload handler counts as the file arrives.
        if request.path == FILES_PATH:
            limit = settings.SCHEDULER_FILE_MAX_BYTES + MULTIPART_OVERHEAD
        if limit is not None and _content_length(request) > limit:
            return too_large(limit)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def too_large(limit: int | None) -> JsonResponse:
    body = {"detail": f"The request body is larger than {limit} bytes (API_MAX_BODY_BYTES)."}
    return JsonResponse(body, status=413)


class ApiJsonErrorsMiddleware:
    """Under /api/, an error Django answers itself (a URL no route matches, such as
    /api/v1/jobs/0.5/; a request it finds malformed) is JSON, ``{"detail": ...}``, as
    the schema documents every error, not Django's HTML page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not isinstance(response, Response)  # DRF's own: its detail, as asked for
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            body = {"detail": f"{response.reason_phrase}."}
            if response.status_code == 404:
                body = {"detail": "Not found."}
            replaced = JsonResponse(body, status=response.status_code)
            for header in ("Retry-After", "Allow", "WWW-Authenticate"):
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response


class AuditContextMiddleware:
    """The audit log's who and from where: the request being served, read when an event
    is recorded (scheduler_app/audit.py), so views and services need not pass it on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with audit.serving(request):
            return self.get_response(request)
