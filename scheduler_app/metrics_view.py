"""GET /metrics: the Prometheus text format, for a scraper only.

With METRICS_TOKEN set, a request must carry ``Authorization: Bearer <token>``
(Prometheus's ``authorization`` or ``bearer_token`` setting). Unset, only a request
from loopback that came through no proxy is answered: a proxy on the same host makes
every client look local, so then a token is required.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scheduler_app.metrics import FleetCollector

REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(FleetCollector())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = refuse(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def refuse(request: HttpRequest) -> HttpResponse | None:
    """The answer to a request that may not read the metrics, or None."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        response = text("A valid 'Authorization: Bearer <METRICS_TOKEN>' is required.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if is_loopback(request.META.get("REMOTE_ADDR", "")) and not through_proxy(request):
        return None
    return text(
        "Metrics are served to loopback only while METRICS_TOKEN is not set; set "
        "METRICS_TOKEN and scrape with 'Authorization: Bearer <token>'.",
        403,
    )


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def through_proxy(request: HttpRequest) -> bool:
    return settings.TRUSTED_PROXY_COUNT > 0 or any(
        name in request.headers for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP")
    )


def text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
