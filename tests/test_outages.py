"""The database away: the API says so (503, Retry-After), a running job goes on, and a
finished run's outcome waits for the database instead of being lost.

The database is really unreachable here: the connection is closed and pointed at a
file that cannot be opened (SQLite) or a port nothing listens on (PostgreSQL).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from django.db import OperationalError, connection

from scheduler_app import services
from scheduler_app.models import Run
from tests.helpers import make_job
from workers import reporting


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database_away(transactional_db) -> Iterator[Callable[[], None]]:
    """Takes the database away; the fixture's value brings it back (so does teardown)."""
    saved = dict(connection.settings_dict)

    def back() -> None:
        connection.close()
        connection.settings_dict.update(saved)

    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/scheduler.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield back
    finally:
        back()


@pytest.fixture
def running(owner) -> Run:
    job = make_job(owner)
    run = Run.objects.create(job=job, trigger="manual", scheduled_for=job.created_at)
    return services.claim_run(run.id, "w1@a")


def test_the_api_answers_503_with_retry_after_and_health_says_what_is_down(api, database_away):
    response = api.get("/api/v1/jobs/")
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json()["detail"].startswith("The database is not answering")
    health = api.get("/api/v1/health/")
    assert health.status_code == 503
    assert health.json()["database"] == "error: OperationalError"
    body = health.content.decode()  # no host, port or file for a stranger to read
    assert "nonexistent" not in body and "127.0.0.1" not in body

    database_away()
    assert api.get("/api/v1/jobs/").status_code == 200


def test_a_running_job_goes_on_while_its_heartbeat_cannot_be_written(running, database_away):
    assert reporting.save_output(running.id, "half way") is True
    database_away()
    assert reporting.save_output(running.id, "done") is True
    assert Run.objects.get(id=running.id).output == "done"


def test_an_outcome_waits_for_the_database_and_is_then_recorded(running, database_away):
    naps = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:  # back after two tries
            database_away()

    finished = reporting.persist(
        lambda: services.finish_run(running, Run.Status.SUCCEEDED, exit_code=0),
        within=60, sleep=nap,
    )  # fmt: skip

    assert naps == [1.0, 2.0]
    assert (finished.status, finished.exit_code) == ("succeeded", 0)


def test_an_outcome_is_given_up_only_after_its_time(running, database_away):
    with pytest.raises(OperationalError):
        reporting.persist(
            lambda: services.finish_run(running, Run.Status.SUCCEEDED), within=0.5,
            sleep=lambda _: None,
        )  # fmt: skip


def test_an_outcome_is_tried_again_more_often_than_the_reaper_sweeps(running, database_away):
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 4:
            database_away()

    reporting.persist(
        lambda: services.finish_run(running, Run.Status.SUCCEEDED, exit_code=0),
        within=60, sleep=nap, most=1.5,
    )  # fmt: skip
    assert naps == [1.0, 1.5, 1.5, 1.5]


def test_what_a_job_reports_is_made_storable_without_its_nul_bytes():
    """PostgreSQL refuses NUL in text and JSON: a job's output, error and result keep
    everything else, with U+FFFD in its place."""
    from workers.reporting import storable

    result = {"out\x00": ["a\x00b", {"n": 1, "s": "\x00"}], "ok": None}
    assert storable(result) == {"out\ufffd": ["a\ufffdb", {"n": 1, "s": "\ufffd"}], "ok": None}
    assert storable("plain") == "plain" and storable(None) is None
