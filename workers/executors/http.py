"""``http``: one request; the status, elapsed time and a body excerpt are recorded.

No user code runs here (only a request is made), so it runs in the worker with
the standard library's client, bounded by the job's timeout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from django.conf import settings

from scheduler_app.models import Run
from workers.executors.base import Outcome
from workers.executors.child import mask, secrets_of
from workers.reporting import beating

DEFAULT_TIMEOUT = 30
EXCERPT = 4096


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
        request = urllib.request.Request(
            payload["url"], data=data, headers=headers, method=payload["method"]
        )
        started = time.monotonic()
        try:
            with beating(run.id, settings.SCHEDULER_LOG_FLUSH_SECONDS):
                status, text = _send(request, run.job.timeout or DEFAULT_TIMEOUT)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
            result = {"elapsed_ms": round((time.monotonic() - started) * 1000)}
            return Outcome(
                Run.Status.TIMED_OUT if timed_out else Run.Status.FAILED,
                error=f"request failed: {reason}",
                result=result,
            )
        elapsed = round((time.monotonic() - started) * 1000)
        text = mask(text, secrets_of(run.job))
        result = {"status": status, "elapsed_ms": elapsed, "body_excerpt": text[:500]}
        if status in payload["expect_status"]:
            return Outcome(Run.Status.SUCCEEDED, 0, text, "", result)
        error = f"HTTP {status}, expected {' or '.join(map(str, payload['expect_status']))}."
        return Outcome(Run.Status.FAILED, None, text, error, result)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, str]:
    """The response's status and the start of its body (an error status is a response)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(EXCERPT).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(EXCERPT).decode("utf-8", "replace")
