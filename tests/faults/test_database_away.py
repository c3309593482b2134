"""The database away for 30 s while jobs run and fall due, for a stack of its own (web
server, beat, worker) that reaches it through a link the test cuts (tests/faults/proxy.py):
the API answers 503, nothing is lost, and every outcome is recorded once it is back
(a worker keeps an outcome, trying again with backoff; a fire is tried again later)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from scheduler_app.models import Run
from tests.faults.measure import Ledger, count, seconds, settle, within
from tests.faults.own import Http
from tests.faults.proxy import SqliteLink, TcpProxy
from tests.helpers import wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
EVERY = timedelta(seconds=2)
AWAY = 30  # seconds


@pytest.fixture
def database_link(tmp_path: Path) -> Iterator[SqliteLink | TcpProxy]:
    """The test database through a link the test can cut; ``.url`` for the processes.
    Asked for before ``own_stack``, so it is there until the stack has stopped."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        link: SqliteLink | TcpProxy = SqliteLink(Path(db["NAME"]), tmp_path / "db")
    else:
        link = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        link.url = f"postgres://{auth}@127.0.0.1:{link.port}/{db['NAME']}"
    try:
        yield link
    finally:
        link.close()


def test_the_database_away_loses_nothing_and_every_outcome_is_recorded_after(
    database_link, own_stack, api, owner, figures, job_tmp_path
):
    own, ledger = own_stack, Ledger(job_tmp_path / "ledger")
    own.env["DATABASE_URL"] = database_link.url
    http = Http(own.start_web(), Token.objects.get(user=owner).key)
    own.start_beat()
    own.start_worker("w14", concurrency=4)
    own.wait_workers(1)
    steady = http.create_job(name="steady", payload={"command": ledger.command()},
                             schedule="every 2 seconds", concurrency_policy="allow")  # fmt: skip
    first = wait_runs(steady["id"], 2, timeout=30, status=Run.Status.SUCCEEDED)[0].scheduled_for
    # Started just before the cut: one ends while the database is away (its outcome must
    # wait for it), one runs across the whole outage.
    during = http.create_job(name="ends-during", payload={"command": ledger.command("sleep 9")},
                             schedule="manual")  # fmt: skip
    across = http.create_job(name="runs-across", schedule="manual",
                             payload={"command": ledger.command(f"sleep {AWAY + 6}")})  # fmt: skip
    runs = [http.run_now(during), http.run_now(across)]
    for run_id in runs:
        wait_runs(Run.objects.get(id=run_id).job_id, 1, id=run_id, status=Run.Status.RUNNING)

    database_link.cut()
    cut_at, started = timezone.now(), time.monotonic()
    listed, health = [], []  # what the API answers meanwhile
    while time.monotonic() - started < AWAY:
        listed.append(http.get("/api/v1/jobs/"))
        health.append(http.get("/api/v1/health/"))
        time.sleep(3)
    database_link.restore()
    restored_at = timezone.now()

    slots_before = (restored_at - first) // EVERY + 1  # fire times up to the restore

    def all_recorded() -> bool:
        """every slot due before the restore and both long runs have their outcome"""
        ended = Run.objects.filter(job_id=steady["id"], scheduled_for__lte=restored_at,
                                   finished_at__isnull=False).count()  # fmt: skip
        return (
            ended >= slots_before
            and not Run.objects.filter(id__in=runs, finished_at__isnull=True).exists()
        )

    recovered = within(all_recorded, timeout=45)
    back = http.get("/api/v1/jobs/")[0]
    assert http.post(f"/api/v1/jobs/{steady['id']}/pause/")[0] == 200
    settled = settle([steady["id"], during["id"], across["id"]], timeout=15)

    jobs = [steady["id"], during["id"], across["id"]]
    tally = count(jobs, ledger, every={steady["id"]: EVERY})
    away = [status for status, _, _ in listed + health]
    figures(f"database away {AWAY} s ({connection.vendor})", **tally.numbers(),
            slots_due_while_away=(restored_at - cut_at) // EVERY,
            api_503=f"{away.count(503)}/{len(away)}",
            time_to_recover=seconds(recovered))  # fmt: skip
    assert set(away) == {503}, listed + health
    assert all(headers.get("Retry-After") == "10" for _, _, headers in listed)
    assert all(body["database"].startswith("error: ") for _, body, _ in health)
    assert back == 200
    assert recovered is not None and settled
    assert (tally.lost, tally.doubled, tally.stuck) == (0, 0, 0)
    assert Run.objects.filter(id__in=runs, status=Run.Status.SUCCEEDED).count() == 2
