"""The OpenAPI schema's error answers, documented in one place for every operation.

Each operation's own answers come from its serializers and ``extend_schema``; the
errors any of them may give are added here, by what the operation is:

- 400 ``ValidationError`` (field -> messages; ``{"detail"}`` for a body that is not
  JSON) where it reads a body or query parameters;
- 401 and 403 ``Error`` where it needs a login (no or a bad token; a session without
  its CSRF token);
- 404 ``Error`` where it names a row by id, or pages through a list (``?page=`` past
  the end);
- 413 ``Error`` where it reads a body (more than API_MAX_BODY_BYTES);
- 429 ``Error`` with ``Retry-After`` everywhere (throttles);
- 503 ``Error`` with ``Retry-After`` everywhere (the database away:
  scheduler_app/middleware.py).

An operation that documents one of these codes with a body keeps its own; one that
documents an error code with a description only (409 at a run's cancel) gets the body.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

ERROR = {
    "type": "object",
    "description": "Why the request was refused.",
    "properties": {
        "detail": {"type": "string"},
        "retry_after": {
            "type": "integer",
            "description": "Seconds to wait (503 while the database is away).",
        },
    },
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": (
        "What is wrong with the request: each field (or query parameter) that is wrong, "
        'with its messages ({"schedule": ["..."]}; "non_field_errors" for the whole); '
        'nested fields nest. A body that is not JSON: {"detail": "..."}.'
    ),
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {}},
            {"type": "object"},
            {"type": "string"},
        ]
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds to wait before trying again.",
    }
}
DESCRIPTIONS = {
    "400": "The request is invalid: see the messages.",
    "401": "No credentials, or a token that is wrong, revoked or expired.",
    "403": "Not allowed (a session login without its CSRF token).",
    "404": "No such row among yours (or the page is past the end, or not a cursor of ours).",
    "413": "The request body is larger than API_MAX_BODY_BYTES.",
    "429": "Too many requests: see Retry-After.",
    "503": "The database is not answering: try again after Retry-After.",
}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class CronfleetAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the error answers every operation may give."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        documented_errors = {code for code in bodies if code.isdigit() and int(code) >= 400}
        for code in sorted(documented_errors | set(self.error_codes())):
            documented = bodies.get(code)
            if documented is not None and documented.get("content"):
                continue  # the view says what it answers
            component = VALIDATION_ERROR if code == "400" else ERROR
            response: dict[str, Any] = {
                "description": (documented or {}).get("description") or DESCRIPTIONS.get(code, ""),
                "content": {"application/json": {"schema": self.component(code, component)}},
            }
            if code in ("429", "503"):
                response["headers"] = RETRY_AFTER
            bodies[code] = response
        return dict(sorted(bodies.items()))

    def error_codes(self) -> list[str]:
        codes = ["429", "503"]
        if self.get_auth():
            codes += ["401", "403"]
        if self.reads_input():
            codes.append("400")
        if self.method in BODY_METHODS:
            codes.append("413")
        if "{" in self.path or self.is_paginated():
            codes.append("404")
        return codes

    def reads_input(self) -> bool:
        if self.method in BODY_METHODS and self.get_request_serializer() is not None:
            return True
        parameters = self._get_parameters()
        return any(parameter.get("in") == "query" for parameter in parameters)

    def is_paginated(self) -> bool:
        return bool(self._is_list_view() and self._get_paginator())

    def component(self, code: str, schema: dict[str, Any]) -> dict[str, Any]:
        name = "ValidationError" if code == "400" else "Error"
        resolved = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(resolved)
        return resolved.ref


# OpenAPI links: what a created row's id leads to, so a client (and Schemathesis's
# stateful tests) can follow "create a job, then run it, then read the run".
LINKS = {
    ("post", "/api/v1/jobs/", "201"): "/api/v1/jobs/{id}/",
    ("post", "/api/v1/calendars/", "201"): "/api/v1/calendars/{id}/",
    ("post", "/api/v1/templates/", "201"): "/api/v1/templates/{id}/",
    ("post", "/api/v1/templates/{id}/instantiate/", "201"): "/api/v1/jobs/{id}/",
    ("post", "/api/v1/jobs/{id}/run/", "202"): "/api/v1/runs/{id}/",
    ("post", "/api/v1/teams/", "201"): "/api/v1/teams/{id}/",
}


def add_links(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the LINKS, to every operation on the row."""
    paths = result.get("paths", {})
    for (method, path, code), target in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(code)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for target_path, operations in paths.items():
            if not target_path.startswith(target):
                continue
            for operation in operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {"id": "$response.body#/id"},
                }
    return result
