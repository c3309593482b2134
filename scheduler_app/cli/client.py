"""The REST API over HTTP: each failure turned into a CliError with its exit code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from scheduler_app.cli import errors
from scheduler_app.cli.config import Settings

API_PREFIX = "/api/v1/"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
LOGIN_HINT = (
    "Run `schedule login URL` (URL: the server, e.g. http://127.0.0.1:8000), "
    "or set SCHEDULE_URL and SCHEDULE_TOKEN."
)
NOT_LOGGED_IN = "Not logged in. " + LOGIN_HINT


class Client:
    def __init__(self, settings: Settings, *, anonymous: bool = False) -> None:
        if not settings.url:
            raise errors.CliError(NOT_LOGGED_IN, errors.REFUSED)
        if not settings.token and not anonymous:
            raise errors.CliError(NOT_LOGGED_IN, errors.REFUSED)
        headers = {"Accept": "application/json", "User-Agent": "cronfleet-cli"}
        if settings.token and not anonymous:
            headers["Authorization"] = f"Token {settings.token}"
        self.url = settings.url
        self.http = httpx.Client(
            base_url=settings.url + API_PREFIX, headers=headers, timeout=TIMEOUT
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to a request under /api/v1/ (``path``) or to a full URL (a page's
        ``next``); a CliError for anything but a 2xx."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            where = str(self.http.base_url.join(path))
            raise errors.CliError(
                f"Cannot reach {where}: {exc or type(exc).__name__}.\n"
                "Check the URL (`schedule login URL`, SCHEDULE_URL or --url), that the server "
                "is running, and your network or proxy."
            ) from exc
        if response.is_success:
            return response
        error = failure(response)
        error.http_status = response.status_code
        raise error

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise errors.CliError(
                f"{response.url} did not answer with JSON: is {self.url} a cronfleet server?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params=_query(params))

    def post(self, path: str, body: Any = None) -> Any:
        return self.json("POST", path, json=body)

    def pages(self, path: str, limit: int | None = None, **params: Any) -> Iterator[dict]:
        """The results of a paginated list, page after page (``next`` links, numbered
        or cursor), up to ``limit``."""
        answer = self.get(path, **params)
        given, followed = 0, set()
        while True:
            for item in answer["results"]:
                if limit is not None and given >= limit:
                    return
                given += 1
                yield item
            link = answer.get("next")
            if not link:
                return
            if link in followed or not answer["results"]:
                raise errors.CliError(f"the server's pages of {path} go round ({link}); stopped.")
            followed.add(link)
            answer = self.json("GET", on_this_server(link))


def on_this_server(link: str) -> str:
    """A ``next`` link as a path under /api/v1/ on the server the user named: the token
    goes nowhere else, whatever host or scheme the server (behind a proxy) wrote in it."""
    parts = urlsplit(link)
    _, _, under_api = parts.path.partition(API_PREFIX)
    return f"{under_api}?{parts.query}" if parts.query else under_api


def _query(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the API spells them."""
    return {
        key: ("true" if value is True else "false" if value is False else value)
        for key, value in params.items()
        if value is not None and value != []
    }


def failure(response: httpx.Response) -> errors.CliError:
    """The CliError for an API error: its fields and messages, and the exit code."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code = response.status_code
    lines = errors.field_lines(body) if body else []
    # A message given both for a field and as the detail (a 413) is said once, by field.
    lines = [line for line in lines if not any(other.endswith(f": {line}") for other in lines)]
    if code == 401:
        detail = f" ({lines[0]})" if lines else ""
        return errors.CliError(
            f"Refused: the server does not accept these credentials{detail}.\n{LOGIN_HINT}",
            errors.REFUSED,
        )
    if code == 403:
        return errors.CliError("Refused: " + ("\n".join(lines) or "forbidden."), errors.REFUSED)
    if code == 404:
        return errors.CliError(
            "Not found: " + _subject(response.request.url.path) + ".", errors.NOT_FOUND
        )
    if code == 429:
        wait = response.headers.get("Retry-After")
        retry = f" Try again in {wait} s." if wait else ""
        return errors.CliError("Too many requests." + retry + "\n" + "\n".join(lines))
    if not lines:
        lines = [f"the server answered {code} {response.reason_phrase} to {response.request.url}"]
    return errors.CliError("\n".join(lines))


def _subject(path: str) -> str:
    """``/api/v1/jobs/12/runs/`` -> ``job 12``: what a 404 was about."""
    parts = [part for part in path.removeprefix(API_PREFIX).split("/") if part]
    if len(parts) >= 2 and parts[1].isdigit():
        return f"{parts[0].rstrip('s')} {parts[1]}"
    return path
