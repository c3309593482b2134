"""The fleet on the real stack with two worker nodes: the stack's own ``w1`` (no labels)
and ``w2`` (``role=db``), each registered as a node by itself when it started."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest
from django.contrib.auth import get_user_model

from config.celery import app
from scheduler_app.models import Node, NodeGroup, Run
from tests.helpers import Stack, client_for, create_job, run_now, wait_for, wait_runs

pytestmark = pytest.mark.stack

ECHO_NODE = {"command": 'echo "on $SCHEDULER_NODE"'}


@pytest.fixture
def two_nodes(live: Stack) -> Iterator[dict[str, Node]]:
    """w1 and w2 registered and online, by their short names."""
    live.start_worker(name="worker-db", node="w2", SCHEDULER_NODE_LABELS="role=db",
                      WORKER_PRESENCE_EVERY="1")  # fmt: skip
    try:
        live.wait_workers(2)
        yield wait_for(both_registered, timeout=60)
    finally:
        if "worker-db" in live.procs:
            live.stop("worker-db")


def both_registered() -> dict[str, Node] | None:
    """both workers registered as nodes"""
    found = {node.name.split("@")[0]: node for node in Node.objects.all()}
    return found if {"w1", "w2"} <= set(found) else None


@pytest.fixture
def admin_api(transactional_db):
    return client_for(get_user_model().objects.create_superuser("root", password="root-pw-123"))


def states(api) -> dict[str, str]:
    return {n["name"].split("@")[0]: n["state"] for n in api.get("/api/v1/nodes/").data["results"]}


def test_nodes_list_with_their_labels_and_online_state(two_nodes, api):
    listed = {n["name"].split("@")[0]: n for n in api.get("/api/v1/nodes/").data["results"]}

    assert {name: n["state"] for name, n in listed.items()} == {"w1": "online", "w2": "online"}
    assert (listed["w1"]["labels"], listed["w2"]["labels"]) == ({}, {"role": "db"})
    assert listed["w2"]["queues"] == ["default"]
    assert listed["w2"]["address"] and listed["w2"]["version"]
    assert listed["w2"]["hostname"] == listed["w2"]["name"]


def test_a_job_targeted_by_group_runs_once_per_node_and_records_each_result(two_nodes, api):
    w1, w2 = two_nodes["w1"], two_nodes["w2"]
    NodeGroup.objects.create(name="both", nodes=[w1.name], selector="role=db")
    command = {"command": 'echo "on $SCHEDULER_NODE"; case $SCHEDULER_NODE in w2@*) exit 3;; esac'}
    job = create_job(api, name="by-group", schedule="manual", payload=command,
                     targets={"groups": ["both"]}, quorum=1)  # fmt: skip

    parent_id = run_now(api, job)
    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    children = sorted(Run.objects.filter(parent_id=parent_id), key=lambda r: r.node)
    assert [(c.node, c.worker, c.status) for c in children] == [
        (w1.hostname, w1.hostname, "succeeded"), (w2.hostname, w2.hostname, "failed")
    ]  # fmt: skip
    assert children[0].output == f"on {w1.hostname}\n"
    assert (parent.status, parent.result["succeeded"]) == ("succeeded", 1)
    assert api.get(f"/api/v1/runs/{parent_id}/").data["worker"] == "targets: 2 nodes"
    history = api.get("/api/v1/runs/", {"node": w2.name}).data["results"]
    assert [r["id"] for r in history] == [children[1].id]
    assert api.get(f"/api/v1/nodes/{w2.id}/").data["stats"] == {"runs_24h": 1, "failures_24h": 1}


def test_any_runs_once_on_one_targeted_node(two_nodes, api):
    names = [node.name for node in two_nodes.values()]
    job = create_job(api, name="any", schedule="manual", payload=ECHO_NODE,
                     targets={"nodes": names}, target_mode="any")  # fmt: skip

    parent_id = run_now(api, job)
    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    (child,) = Run.objects.filter(parent_id=parent_id)
    assert child.status == parent.status == "succeeded"
    assert child.node in {node.hostname for node in two_nodes.values()}
    assert child.output == f"on {child.node}\n"


def test_max_parallel_one_starts_each_node_after_the_previous_ended(two_nodes, api):
    job = create_job(api, name="rolling", schedule="manual",
                     payload={"command": "sleep 1; echo done"},
                     targets={"labels": "", "nodes": [n.name for n in two_nodes.values()]},
                     max_parallel=1)  # fmt: skip

    parent_id = run_now(api, job)
    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    children = sorted(Run.objects.filter(parent_id=parent_id), key=lambda r: r.started_at)
    assert parent.status == "succeeded" and len(children) == 2
    for before, after in pairwise(children):
        assert after.started_at >= before.finished_at, (before.finished_at, after.started_at)


def test_halt_on_failure_skips_the_nodes_not_yet_sent(two_nodes, api):
    job = create_job(api, name="halting", schedule="manual", payload={"command": "exit 1"},
                     targets={"nodes": sorted(n.name for n in two_nodes.values())},
                     max_parallel=1, halt_on_failure=True)  # fmt: skip

    parent_id = run_now(api, job)
    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    first, second = sorted(Run.objects.filter(parent_id=parent_id), key=lambda r: r.node)
    assert (first.status, second.status, parent.status) == ("failed", "skipped", "failed"), [
        (first.error, second.error)
    ]
    assert second.started_at is None
    assert second.error == (
        f"skipped: halted after the run on {first.node} failed (halt_on_failure)"
    )


def consumes_default(hostname: str) -> bool:
    replies = app.control.inspect(timeout=1.0, destination=[hostname]).active_queues() or {}
    return any(q["name"] == "default" for q in replies.get(hostname, []))


def test_a_draining_node_takes_no_new_runs_and_resumes_when_undrained(
    live, two_nodes, api, admin_api
):
    w2 = two_nodes["w2"]
    url = f"/api/v1/nodes/{w2.id}/"
    assert admin_api.patch(url, {"draining": True}, format="json").data["state"] == "draining"
    wait_for(lambda: not consumes_default(w2.hostname), timeout=30)

    plain = create_job(api, name="plain", schedule="manual", payload=ECHO_NODE,
                       concurrency_policy="allow")  # fmt: skip
    for _ in range(4):
        run_now(api, plain)
    ran = wait_runs(plain["id"], 4, timeout=60, status=Run.Status.SUCCEEDED)
    assert {run.worker for run in ran} == {two_nodes["w1"].hostname}
    # A message a draining node got all the same (here: made to consume again behind
    # its back) is given back by its pool process, and runs elsewhere.
    app.control.add_consumer("default", destination=[w2.hostname], reply=True, timeout=5)
    wait_for(lambda: consumes_default(w2.hostname), timeout=30)
    received_before = live.log("worker-db").count("workers.execute_run")
    blocker = create_job(api, name="blocker", schedule="manual", concurrency_policy="allow",
                         payload={"command": "sleep 6"})  # fmt: skip
    for _ in range(2):  # w1's pool processes busy: the next runs reach w2
        run_now(api, blocker)
    # Both start on w1, at once or (when w2 took one first and gave it back until w1 had
    # a free process) one after the other.
    wait_runs(blocker["id"], 2, timeout=90, started_at__isnull=False)
    for _ in range(3):
        run_now(api, plain)
    ran = wait_runs(plain["id"], 7, timeout=90, status=Run.Status.SUCCEEDED)
    blocked = wait_runs(blocker["id"], 2, timeout=60, status=Run.Status.SUCCEEDED)
    assert {run.worker for run in [*ran, *blocked]} == {two_nodes["w1"].hostname}
    assert live.log("worker-db").count("workers.execute_run") > received_before
    app.control.cancel_consumer("default", destination=[w2.hostname], reply=True, timeout=5)
    targeted = create_job(api, name="to-w2", schedule="manual", payload=ECHO_NODE,
                          targets={"nodes": [w2.name]})  # fmt: skip
    parent_id = run_now(api, targeted)
    wait_runs(targeted["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)
    (child,) = Run.objects.filter(parent_id=parent_id)
    assert (child.status, child.error) == ("skipped", f"skipped: node {w2.name} is draining")

    assert admin_api.patch(url, {"draining": False}, format="json").data["state"] == "online"
    wait_for(lambda: consumes_default(w2.hostname), timeout=30)


def test_a_stopped_workers_node_goes_offline_and_its_targeted_child_is_skipped(
    live, two_nodes, api
):
    live.stop("worker-db")
    wait_for(lambda: states(api) == {"w1": "online", "w2": "offline"}, timeout=60)
    w1, w2 = two_nodes["w1"], two_nodes["w2"]
    job = create_job(api, name="partial", schedule="manual", payload=ECHO_NODE,
                     targets={"nodes": [w1.name, w2.name]})  # fmt: skip

    parent_id = run_now(api, job)
    parent = wait_runs(job["id"], 1, timeout=60, id=parent_id, finished_at__isnull=False)[0]

    children = {c.node: (c.status, c.error) for c in Run.objects.filter(parent_id=parent_id)}
    assert children == {
        w1.hostname: ("succeeded", ""),
        w2.hostname: ("skipped", f"skipped: node {w2.name} is offline"),
    }
    assert parent.status == "failed" and "1 of 2 nodes succeeded" in parent.error


def test_a_worker_with_labels_that_do_not_parse_refuses_to_start(live):
    live.start_worker(name="bad-labels", node="w9", SCHEDULER_NODE_LABELS="role=d b")
    proc = live.procs["bad-labels"]
    try:
        code = proc.wait(timeout=60)
    finally:
        live.procs.pop("bad-labels", None)
        if proc.poll() is None:
            proc.kill()
    assert code != 0
    assert "SCHEDULER_NODE_LABELS='role=d b'" in live.log("bad-labels")
    assert "value 'd b' must be" in live.log("bad-labels")
    assert not Node.objects.filter(name__startswith="w9@").exists()
