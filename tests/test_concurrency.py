"""Concurrency policies hold across worker nodes, not only inside one process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler_app.models import Run
from tests.conftest import Stack
from tests.test_stack import create_job, wait_runs

pytestmark = pytest.mark.stack


@pytest.fixture
def two_nodes(live: Stack) -> Iterator[Stack]:
    live.start_worker(name="worker2", node="w2")
    live.wait_workers(2)
    yield live
    live.stop("worker2")


@pytest.mark.parametrize("attempt", range(3))
def test_forbid_lets_one_of_two_racing_runs_start(two_nodes, api, attempt):
    job = create_job(
        api,
        name=f"race-{attempt}",
        payload={"command": "sleep 2; echo done"},
        schedule="manual",
        concurrency_policy="forbid",
    )
    for _ in range(4):
        assert api.post(f"/api/v1/jobs/{job['id']}/run/").status_code == 202

    runs = wait_runs(job["id"], 4, timeout=60, finished_at__isnull=False)

    assert sorted(r.status for r in runs) == ["skipped", "skipped", "skipped", "succeeded"]
    assert all(r.error.startswith("skipped: run ") for r in runs if r.status == "skipped")


def test_replace_stops_the_running_one_on_its_node(two_nodes, api):
    job = create_job(
        api,
        name="replace",
        payload={"command": "sleep 30"},
        schedule="manual",
        concurrency_policy="replace",
    )
    first = api.post(f"/api/v1/jobs/{job['id']}/run/").data["id"]
    wait_runs(job["id"], 1, status=Run.Status.RUNNING)
    second = api.post(f"/api/v1/jobs/{job['id']}/run/").data["id"]

    wait_runs(job["id"], 1, status=Run.Status.RUNNING, id=second)
    replaced = wait_runs(job["id"], 1, id=first, finished_at__isnull=False)[0]
    assert (replaced.status, replaced.error) == ("cancelled", f"replaced by run {second}")
    api.post(f"/api/v1/runs/{second}/cancel/")
    wait_runs(job["id"], 1, id=second, finished_at__isnull=False)
