"""The API against its own OpenAPI schema: Schemathesis, in-process over WSGI.

Every operation is called with generated requests, valid and invalid ones, as a
signed-in user (a token, as scripts send), and every answer is judged by all of
Schemathesis's checks: no 5xx, only documented status codes, content types and
headers, bodies that match the schema, invalid requests refused and valid ones
accepted. Then a stateful run follows the schema's links (a created row's id to
the operations on it). The generation is derandomized (a fixed seed) and bounded
(EXAMPLES per operation, STATEFUL_SCENARIOS), so a run is the same every time and
takes about a minute on two busy cores, on SQLite and PostgreSQL alike.

Throttles are lifted for the run (no 429 makes it flaky); nothing else is changed.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from rest_framework import throttling
from rest_framework.authtoken.models import Token
from schemathesis.checks import CHECKS, load_all_checks

from config.wsgi import application
from tests.helpers import grant_run_code

pytestmark = pytest.mark.schema

load_all_checks()
# Every built-in check, not only "no server error".
ALL_CHECKS = [check for check in CHECKS.get_all() if callable(check)]

# Operations that end the caller's token (DELETE auth/token/, POST auth/token/rotate/)
# are called with a token of their own, made afresh for each call, so the run keeps its
# credentials; nothing is left out.
TOKEN_ENDING = {
    ("DELETE", "/api/v1/auth/token/"),
    ("POST", "/api/v1/auth/token/rotate/"),
}

EXAMPLES = 10
STATEFUL_SCENARIOS = 10


def served_schema() -> dict:
    """The schema /api/schema/ serves, made without a request (collection needs no database)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


# Schema-valid data must be accepted (2xx) everywhere but where validity takes more than
# JSON Schema can say; there a 400 (with its messages) is a right answer too: a job's
# rules (a schedule's grammar, a payload by kind, a time zone's name, a dependency's
# existence), a name unique among the owner's, a template's defaults, a password.
RULED_BODIES = [
    ("POST", "/api/v1/auth/token/"),
    ("POST", "/api/v1/jobs/"),
    ("PUT", "/api/v1/jobs/{id}/"),
    ("PATCH", "/api/v1/jobs/{id}/"),
    ("POST", "/api/v1/schedules/preview/"),
    ("POST", "/api/v1/calendars/"),
    ("PUT", "/api/v1/calendars/{id}/"),
    ("PATCH", "/api/v1/calendars/{id}/"),
    ("POST", "/api/v1/templates/"),
    ("PUT", "/api/v1/templates/{id}/"),
    ("PATCH", "/api/v1/templates/{id}/"),
    ("POST", "/api/v1/templates/{id}/instantiate/"),
    ("DELETE", "/api/v1/calendars/{id}/"),  # 400 while jobs use the calendar
    ("POST", "/api/v1/teams/"),  # a team's name is unique
    ("PUT", "/api/v1/teams/{id}/"),
    ("PATCH", "/api/v1/teams/{id}/"),
    ("DELETE", "/api/v1/teams/{id}/"),  # 400 while it holds rows
    ("POST", "/api/v1/teams/{id}/members/"),  # a user that exists, not yet a member
    ("PATCH", "/api/v1/teams/{id}/members/"),  # a member; the last admin stays one
    ("DELETE", "/api/v1/teams/{id}/members/"),
    ("POST", "/api/v1/import/"),  # a file's content is judged by its format's reader
]
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261128,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "operations": [
            {
                "include-method": method,
                "include-path": path,
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            }
            for method, path in RULED_BODIES
        ],
    }
)

schema = schemathesis.openapi.from_dict(served_schema(), config=CONFIG)
schema.app = application


@pytest.fixture(autouse=True)
def in_process(db, monkeypatch):
    """Requests served in the test's transaction, and never throttled."""
    # Django closes the connection after each request, and with it the test's
    # transaction; its own test client keeps it open in the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # A run sends hundreds of requests a minute: no throttle may answer 429 to them.
    monkeypatch.setattr(
        throttling.SimpleRateThrottle,
        "THROTTLE_RATES",
        dict.fromkeys(throttling.SimpleRateThrottle.THROTTLE_RATES, "1000000/second"),
    )
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Credentials:
    """The run's user and token; a second user whose token is made anew for each call
    that ends it."""

    def __init__(self) -> None:
        users = get_user_model().objects
        self.user = grant_run_code(users.create_user("fuzz", password="fuzz-password-1"))
        self.headers = self.header(Token.objects.create(user=self.user))
        self.spare = users.create_user("fuzz-spare", password="fuzz-password-2")

    @staticmethod
    def header(token: Token) -> dict[str, str]:
        return {"Authorization": f"Token {token.key}"}

    def for_case(self, case) -> dict[str, str]:
        if (case.method.upper(), case.path) not in TOKEN_ENDING:
            return self.headers
        Token.objects.filter(user=self.spare).delete()
        return self.header(Token.objects.create(user=self.spare))


@pytest.fixture
def credentials(db) -> Credentials:
    return Credentials()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema(case, credentials):
    case.call_and_validate(headers=credentials.for_case(case), checks=ALL_CHECKS)


STATEFUL_SETTINGS = settings(
    max_examples=STATEFUL_SCENARIOS,
    stateful_step_count=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_linked_operations_conform_to_the_schema(credentials):
    """Stateful: sequences that follow the schema's links (create a job, run it, read
    and cancel the run; a template's instantiate, ...), every answer judged likewise."""

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": credentials.for_case(case)}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=ALL_CHECKS, **kwargs)

    run_state_machine_as_test(Workflow, settings=STATEFUL_SETTINGS)


# What the runs above found, as plain examples.


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/jobs/?page_size=0",
        "/api/v1/jobs/?page_size=501",
        "/api/v1/jobs/?page_size=null",
        "/api/v1/jobs/?enabled=null",
        "/api/v1/alerts/?open=maybe",
        "/api/v1/runs/?job=0",
        "/api/v1/next-runs/?count=101",
        "/api/v1/runs/?status=",
        "/api/v1/audit/?until=",
        "/api/v1/audit/?since=yesterday",
        "/api/v1/audit/?action=explode",
    ],
)
def test_a_query_parameter_the_schema_refuses_is_a_400(api, url):
    response = api.get(url)
    assert response.status_code == 400, response.content
    assert isinstance(response.json(), dict)


def test_query_parameters_the_schema_allows_are_accepted(api):
    for url in ("/api/v1/jobs/?page_size=500&enabled=false", "/api/v1/alerts/?open=true"):
        assert api.get(url).status_code == 200


def test_a_url_no_route_matches_is_a_json_404(api):
    response = api.get("/api/v1/jobs/0.5/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_drf_errors_keep_their_own_detail_whatever_the_client_accepts(client):
    response = client.get("/api/v1/jobs/", HTTP_ACCEPT="text/html")  # the browsable API
    assert response.status_code == 401
    assert b"Authentication credentials were not provided." in response.content


def test_a_number_is_not_a_string(api):
    response = api.post(
        "/api/v1/calendars/", {"name": "c", "description": 0, "dates": []}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"description": ["Not a valid string."]}


def test_every_operation_documents_its_errors():
    paths = served_schema()["paths"]
    jobs = paths["/api/v1/jobs/{id}/"]["get"]["responses"]
    assert {"200", "401", "403", "404", "429", "503"} <= set(jobs)
    assert jobs["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    create = paths["/api/v1/jobs/"]["post"]["responses"]
    assert create["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationError"
    }
    assert "413" in create and "Retry-After" in create["429"]["headers"]
    assert "409" in paths["/api/v1/runs/{id}/cancel/"]["post"]["responses"]
    assert "401" not in paths["/api/v1/health/"]["get"]["responses"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", "5"), ("enabled", "true"), ("enabled", 1), ("calendar", "1")],
)
def test_a_json_body_has_the_types_the_schema_says(api, field, value):
    job = {"name": "typed", "payload": {"command": "true"}, "schedule": "manual", field: value}
    response = api.post("/api/v1/jobs/", job, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
