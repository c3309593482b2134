"""``http``: one request; the status, elapsed time and a body excerpt are recorded.

No user code runs here (only a request is made), so it runs in the worker, through
the egress guard (scheduler_app/egress.py: http and https only, no loopback,
private or metadata address unless SCHEDULER_HTTP_ALLOW lists it, redirects judged
alike, the body read up to SCHEDULER_HTTP_BODY_LIMIT), bounded by the job's timeout.

A cancel is seen by the heartbeat thread (the run's row is no longer running): it
aborts the request, which shuts its socket down, so the request stops within a
heartbeat (SCHEDULER_LOG_FLUSH_SECONDS) and the run is recorded as cancelled.
"""

from __future__ import annotations

import json
import time

from django.conf import settings

from scheduler_app import egress
from scheduler_app.models import Run
from workers.executors.base import Outcome
from workers.executors.child import mask, secrets_of
from workers.reporting import beating

DEFAULT_TIMEOUT = 30
EXCERPT = 500  # characters of the body in result.body_excerpt (the output has all that was read)


class HttpExecutor:
    def execute(self, run: Run) -> Outcome:
        payload = run.job.payload
        body, headers = payload.get("body"), dict(payload.get("headers", {}))
        data = None
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        timeout = run.job.timeout or DEFAULT_TIMEOUT
        guard = egress.Guard()
        started = time.monotonic()
        try:
            with beating(run.id, settings.SCHEDULER_LOG_FLUSH_SECONDS, on_stop=guard.abort):
                response = egress.request(
                    payload["method"], payload["url"], headers=headers, body=data,
                    timeout=timeout, guard=guard,
                )  # fmt: skip
        except egress.EgressError as exc:
            result = {"elapsed_ms": _since(started)}
            said = mask(str(exc), secrets_of(run.job))  # it may quote a URL with a token
            if isinstance(exc, egress.Aborted):
                return Outcome(Run.Status.CANCELLED, error="cancelled", result=result)
            if isinstance(exc, egress.TimedOut):
                return Outcome(Run.Status.TIMED_OUT, error=f"request {said}", result=result)
            error = said if isinstance(exc, egress.Refused) else f"request failed: {said}"
            return Outcome(Run.Status.FAILED, error=error, result=result)
        text = mask(response.body.decode("utf-8", "replace"), secrets_of(run.job))
        result = {"status": response.status, "elapsed_ms": _since(started),
                  "body_excerpt": text[:EXCERPT]}  # fmt: skip
        if response.truncated:
            result["body_truncated_at"] = len(response.body)
        if response.url != payload["url"]:
            result["url"] = mask(response.url, secrets_of(run.job))  # where redirects led
        if response.status in payload["expect_status"]:
            return Outcome(Run.Status.SUCCEEDED, 0, text, "", result)
        expected = " or ".join(map(str, payload["expect_status"]))
        error = f"HTTP {response.status}, expected {expected}."
        return Outcome(Run.Status.FAILED, None, text, error, result)


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
