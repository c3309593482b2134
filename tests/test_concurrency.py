"""Concurrency policies hold across worker nodes, not only inside one process."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from scheduler_app.models import Run
from tests.helpers import Stack, create_job, manual_job, run_now, wait_runs

pytestmark = pytest.mark.stack


@pytest.fixture
def two_nodes(live: Stack) -> Iterator[Stack]:
    live.start_worker(name="worker2", node="w2")
    live.wait_workers(2)
    yield live
    live.stop("worker2")


@pytest.mark.parametrize("attempt", range(3))
def test_forbid_lets_one_of_two_racing_runs_start(two_nodes, api, attempt):
    job = manual_job(api, f"race-{attempt}", "sleep 4; echo done", concurrency_policy="forbid")
    for _ in range(4):
        run_now(api, job)

    runs = wait_runs(job["id"], 4, timeout=90, finished_at__isnull=False)

    # Which of the four start depends on how fast the two nodes take them (a slow
    # machine may take the last one after the first ended); what forbid promises is
    # that no two ever run at once, and that each skip names a run running then.
    started = sorted((r for r in runs if r.status == "succeeded"), key=lambda r: r.started_at)
    skipped = [r for r in runs if r.status == "skipped"]
    assert started and skipped and len(started) + len(skipped) == 4, [r.status for r in runs]
    for before, after in itertools.pairwise(started):
        assert after.started_at >= before.finished_at, (before.id, after.id)
    by_id = {r.id: r for r in started}
    for run in skipped:
        running = by_id[int(run.error.removeprefix("skipped: run ").split()[0])]
        assert running.started_at <= run.finished_at <= running.finished_at, run.error


def test_replace_stops_the_running_one_on_its_node(two_nodes, api):
    job = manual_job(api, "replace", "sleep 30", concurrency_policy="replace")
    first = run_now(api, job)
    wait_runs(job["id"], 1, status=Run.Status.RUNNING)
    second = run_now(api, job)

    wait_runs(job["id"], 1, status=Run.Status.RUNNING, id=second)
    replaced = wait_runs(job["id"], 1, id=first, finished_at__isnull=False)[0]
    assert (replaced.status, replaced.error) == ("cancelled", f"replaced by run {second}")
    api.post(f"/api/v1/runs/{second}/cancel/")
    wait_runs(job["id"], 1, id=second, finished_at__isnull=False)


def test_fan_out_runs_once_on_every_node_and_aggregates_by_quorum(two_nodes, api):
    job = create_job(
        api,
        name="everywhere",
        schedule="manual",
        fan_out=True,
        quorum=1,
        payload={
            "command": 'echo "on $SCHEDULER_NODE"; case $SCHEDULER_NODE in w2@*) exit 3;; esac'
        },
    )
    parent_id = run_now(api, job)

    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    children = sorted(Run.objects.filter(parent_id=parent_id), key=lambda r: r.node)
    assert [c.node.split("@")[0] for c in children] == ["w1", "w2"]
    assert [c.worker for c in children] == [c.node for c in children]
    assert [c.status for c in children] == ["succeeded", "failed"]
    assert children[0].output == f"on {children[0].node}\n"
    assert parent.status == "succeeded"
    assert parent.result == {
        "nodes": {c.node: c.status for c in children},
        "succeeded": 1,
        "quorum": 1,
    }
    listed = api.get(f"/api/v1/runs/{parent_id}/").data
    assert listed["worker"] == "fan-out to 2 nodes"


def test_a_job_runs_only_on_the_worker_group_of_its_queue(live, api):
    live.start_worker(name="reports-worker", node="w3", queues="reports")
    try:
        live.wait_workers(2)
        job = manual_job(api, "report", "echo report", queue="reports")
        run_now(api, job)
        (run,) = wait_runs(job["id"], 1, timeout=30, status=Run.Status.SUCCEEDED)
        assert run.worker.startswith("w3@")
    finally:
        live.stop("reports-worker")


def test_retries_back_off_exponentially(live, api):
    job = manual_job(api, "backoff", "exit 1", max_retries=2, retry_delay=1, retry_backoff=True)
    run_now(api, job)

    runs = wait_runs(job["id"], 3, timeout=30, status=Run.Status.FAILED)

    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(runs)]
    # Delays of 1 s then 2 s, each less up to 20 % jitter (upper bounds leave room for
    # a busy machine; the lower bounds are what shows the backoff).
    assert 0.8 <= gaps[0] < 3.0 and 1.6 <= gaps[1] < 5.0, gaps
    assert [r.attempt for r in runs] == [1, 2, 3]
