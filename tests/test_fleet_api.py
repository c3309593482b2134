"""The fleet's API: nodes and node groups (shared infrastructure: everyone reads, only
those with the model permission change), a job's targets, and a node's run history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app import nodes, presence, services
from scheduler_app.admin_fleet import NodeAdmin
from scheduler_app.models import Node, NodeGroup, Run
from tests.helpers import client_for, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> list[Node]:
    now = timezone.now()
    return [
        Node.objects.create(name="db1", hostname="db1@h", labels={"role": "db", "zone": "eu"},
                            queues=["default"], last_seen=now),
        Node.objects.create(name="db2", hostname="db2@h", labels={"role": "db", "zone": "us"},
                            last_seen=now - timedelta(minutes=5)),
        Node.objects.create(name="web1", hostname="web1@h", labels={"role": "web"},
                            last_seen=now, draining=True),
    ]  # fmt: skip


@pytest.fixture
def admin_api(db):
    return client_for(get_user_model().objects.create_superuser("root", password="root-pw-123"))


def test_nodes_list_their_state_labels_and_runs_the_caller_may_see(api, outsider_api, owner, fleet):
    job = make_job(owner, name="mine")
    Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now(),
                       status=Run.Status.RUNNING, worker="db1@h", node="db1@h")  # fmt: skip

    listed = {n["name"]: n for n in api.get("/api/v1/nodes/").data["results"]}

    assert {name: n["state"] for name, n in listed.items()} == {
        "db1": "online", "db2": "offline", "web1": "draining"
    }  # fmt: skip
    assert listed["db1"]["labels"] == {"role": "db", "zone": "eu"}
    assert listed["db1"]["queues"] == ["default"]
    assert [r["job_name"] for r in listed["db1"]["running"]] == ["mine"]
    assert [r["job_name"] for r in listed["db1"]["last_runs"]] == ["mine"]
    assert listed["db1"]["stats"] == {"runs_24h": 0, "failures_24h": 0}
    # Another user sees the node, not the owner's runs on it.
    theirs = outsider_api.get(f"/api/v1/nodes/{fleet[0].id}/").data
    assert (theirs["name"], theirs["running"], theirs["last_runs"]) == ("db1", [], [])


def test_a_fresh_presence_in_redis_makes_a_node_online_before_its_row_says_so(
    api, fleet, redis_client
):
    presence.worker_seen(redis_client, "db2@h")
    try:
        assert api.get(f"/api/v1/nodes/{fleet[1].id}/").data["state"] == "online"
    finally:
        presence.worker_gone(redis_client, "db2@h")


def test_only_a_user_with_the_permission_changes_a_node(api, admin_api, outsider, fleet,
                                                        redis_client):  # fmt: skip
    url = f"/api/v1/nodes/{fleet[0].id}/"
    assert api.patch(url, {"draining": True}, format="json").status_code == 403
    assert api.patch("/api/v1/nodes/999999/", {"draining": True}, format="json").status_code in (
        403, 404)  # fmt: skip
    assert api.put(url, {}, format="json").status_code in (403, 405)

    changed = admin_api.patch(url, {"draining": True, "labels": {"role": "db", "tier": "1"}},
                              format="json")  # fmt: skip
    assert changed.status_code == 200, changed.data
    assert (changed.data["state"], changed.data["labels"]) == (
        "draining", {"role": "db", "tier": "1"})  # fmt: skip
    assert redis_client.sismember(presence.DRAINING_KEY, "db1@h")

    outsider.user_permissions.add(Permission.objects.get(codename="change_node"))
    operator = client_for(get_user_model().objects.get(pk=outsider.pk))
    assert operator.patch(url, {"draining": False}, format="json").status_code == 200
    assert not redis_client.sismember(presence.DRAINING_KEY, "db1@h")

    assert api.delete(url).status_code == 403
    assert admin_api.delete(f"/api/v1/nodes/{fleet[1].id}/").status_code == 204
    assert not Node.objects.filter(name="db2").exists()

    bad = admin_api.patch(url, {"labels": {"role": "d b"}}, format="json")
    assert bad.status_code == 400 and "value 'd b'" in str(bad.data["labels"])
    assert admin_api.patch(url, {"draining": "yes"}, format="json").status_code == 400


def test_node_groups_by_list_and_selector_show_their_members(api, admin_api, fleet):
    made = admin_api.post("/api/v1/node-groups/", {"name": "dbs", "selector": "role=db"},
                          format="json")  # fmt: skip
    assert made.status_code == 201, made.data
    assert made.data["members"] == ["db1", "db2"]
    listed = admin_api.post("/api/v1/node-groups/", {"name": "picked", "nodes": ["web1"],
                            "selector": "zone in (us)"}, format="json")  # fmt: skip
    assert listed.data["members"] == ["db2", "web1"]
    # Everyone reads them; a plain user changes none.
    assert [g["name"] for g in api.get("/api/v1/node-groups/").data["results"]] == [
        "dbs", "picked"]  # fmt: skip
    assert api.post("/api/v1/node-groups/", {"name": "x"}, format="json").status_code == 403
    group_url = f"/api/v1/node-groups/{made.data['id']}/"
    assert api.delete(group_url).status_code == 403
    assert api.patch(group_url, {"selector": ""}, format="json").status_code == 403


@pytest.mark.parametrize(
    ("body", "field", "said"),
    [
        ({"name": "g", "selector": "zone in (eu"}, "selector", "position 12"),
        ({"name": "g", "nodes": ["db1", "ghost"]}, "nodes", "no node is named 'ghost'"),
        ({"name": "g", "nodes": "db1"}, "nodes", "list of node names"),
        ({"name": "dbs"}, "name", "exists already"),
    ],
)
def test_a_node_group_is_refused_with_the_field_and_the_reason(admin_api, fleet, body, field,
                                                               said):  # fmt: skip
    NodeGroup.objects.create(name="dbs", selector="role=db")
    answer = admin_api.post("/api/v1/node-groups/", body, format="json")
    assert answer.status_code == 400
    assert said in str(answer.data[field])


JOB = {"name": "deploy", "schedule": "manual", "payload": {"command": "true"}}


def test_a_job_targets_nodes_groups_and_labels(api, fleet):
    NodeGroup.objects.create(name="dbs", selector="role=db")
    body = {**JOB, "targets": {"nodes": ["web1"], "groups": ["dbs"], "labels": "zone=eu"},
            "target_mode": "each", "max_parallel": 1, "halt_on_failure": True}  # fmt: skip
    made = api.post("/api/v1/jobs/", body, format="json")
    assert made.status_code == 201, made.data
    assert made.data["targets"] == body["targets"]
    assert (made.data["target_mode"], made.data["max_parallel"]) == ("each", 1)
    assert made.data["halt_on_failure"] is True


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"targets": {"nodes": ["ghost"]}}, "nodes: no node is named 'ghost'."),
        ({"targets": {"groups": ["nope"]}}, "groups: no group is named 'nope'."),
        ({"targets": {"labels": "role in db"}}, "expected '(' at position 9"),
        ({"targets": {"hosts": ["db1"]}}, "unknown key 'hosts'"),
        ({"targets": {"nodes": "db1"}}, "nodes: must be a list of node names"),
        ({"targets": {"nodes": []}}, "name at least one node"),
        ({"targets": ["db1"]}, "must be an object"),
        ({"targets": {"nodes": ["db1"]}, "fan_out": True}, "exclude each other"),
        ({"target_mode": "some"}, "not a valid choice"),
        ({"max_parallel": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_targets_are_refused_naming_what_is_wrong(api, fleet, fields, said):
    answer = api.post("/api/v1/jobs/", {**JOB, **fields}, format="json")
    assert answer.status_code == 400
    assert said in str(answer.data), answer.data


def test_a_nodes_history_is_its_runs_by_name(api, outsider_api, owner, fleet):
    job = make_job(owner, name="hist")
    now = timezone.now()
    ran = Run.objects.create(job=job, trigger="manual", scheduled_for=now, worker="db1@h",
                             status=Run.Status.SUCCEEDED)  # fmt: skip
    skipped = Run.objects.create(job=job, trigger="manual", scheduled_for=now, node="db1@h",
                                 status=Run.Status.SKIPPED)  # fmt: skip
    Run.objects.create(job=job, trigger="manual", scheduled_for=now, node="db2@h",
                       worker="db2@h")  # fmt: skip

    found = api.get("/api/v1/runs/", {"node": "db1"}).data["results"]

    assert sorted(r["id"] for r in found) == sorted([ran.id, skipped.id])
    assert outsider_api.get("/api/v1/runs/", {"node": "db1"}).data["results"] == []


def test_a_targeted_run_with_every_node_down_ends_with_each_node_skipped(owner, fleet):
    job = make_job(owner, name="down", targets={"nodes": ["db2", "web1"]},
                   schedule={"type": "manual"})  # fmt: skip
    parent = Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now())
    services.claim_run(parent.id, "db1@h")
    parent = Run.objects.select_related("job").get(id=parent.id)

    services.target(parent)

    parent.refresh_from_db()
    children = {c.node: (c.status, c.error) for c in parent.children.all()}
    assert children == {"db2@h": ("skipped", "skipped: node db2 is offline"),
                        "web1@h": ("skipped", "skipped: node web1 is draining")}  # fmt: skip
    assert parent.status == "failed" and "0 of 2 nodes succeeded" in parent.error


def test_any_with_no_node_online_fails_saying_why(owner, fleet):
    job = make_job(owner, name="any", targets={"nodes": ["db2"]}, target_mode="any",
                   schedule={"type": "manual"})  # fmt: skip
    parent = Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now())
    services.claim_run(parent.id, "db1@h")

    services.target(Run.objects.select_related("job").get(id=parent.id))

    parent.refresh_from_db()
    assert (parent.status, parent.error) == ("failed", "no targeted node is online: db2 (offline).")


def test_the_admin_lists_nodes_with_state_badges_and_edits_groups(client, owner, fleet):
    root = get_user_model().objects.create_superuser("root2", password="root-pw-123")
    client.force_login(root)
    job = make_job(owner, name="busy-job")
    run = Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now(),
                             status=Run.Status.RUNNING, worker="db1@h")  # fmt: skip

    page = client.get("/admin/scheduler_app/node/").content.decode()

    assert page.count("cf-badge") == 3
    assert ">online<" in page and ">offline<" in page and ">draining<" in page
    assert f"#{run.id} busy-job" in page
    assert client.get(f"/admin/scheduler_app/node/{fleet[0].id}/change/").status_code == 200
    bad = client.post("/admin/scheduler_app/nodegroup/add/",
                      {"name": "g", "nodes": "[]", "selector": "role in db"})  # fmt: skip
    assert "expected &#x27;(&#x27; at position 9" in bad.content.decode()
    good = client.post("/admin/scheduler_app/nodegroup/add/",
                       {"name": "g", "nodes": '["web1"]', "selector": "role=db"})  # fmt: skip
    assert good.status_code == 302
    assert "db1, db2, web1" in client.get("/admin/scheduler_app/nodegroup/").content.decode()


def test_a_child_left_queued_on_a_node_that_went_offline_is_skipped_by_the_sweep(owner, fleet):
    job = make_job(owner, name="stuck", targets={"nodes": ["db1", "db2"]},
                   schedule={"type": "manual"})  # fmt: skip
    now = timezone.now()
    parent = Run.objects.create(job=job, trigger="manual", scheduled_for=now,
                                status=Run.Status.RUNNING, started_at=now)  # fmt: skip
    old = now - timedelta(minutes=10)
    done = Run.objects.create(job=job, trigger="manual", scheduled_for=now, parent=parent,
                              node="db1@h", status=Run.Status.SUCCEEDED, due_at=old)  # fmt: skip
    stuck = Run.objects.create(job=job, trigger="manual", scheduled_for=now, parent=parent,
                               node="db2@h", due_at=old)  # fmt: skip

    assert services.requeue_stale(60) == 0

    stuck.refresh_from_db()
    parent.refresh_from_db()
    assert (stuck.status, stuck.error) == (
        "skipped",
        "skipped: node db2 went offline before it started the run",
    )
    assert parent.status == "failed" and parent.result["nodes"] == {
        done.node: "succeeded", stuck.node: "skipped"}  # fmt: skip


def test_a_page_of_nodes_asks_their_state_figures_and_runs_once(
    api, owner, fleet, django_assert_num_queries
):
    job, now = make_job(owner, name="mine"), timezone.now()
    for node in fleet:
        for n, status in enumerate(["succeeded"] * 6 + [Run.Status.RUNNING] * 2):
            Run.objects.create(job=job, trigger="manual", status=status, worker=node.hostname,
                               node=node.hostname,
                               scheduled_for=now + timedelta(seconds=n),
                               queued_at=now + timedelta(seconds=n),
                               started_at=now + timedelta(seconds=10 - n))  # fmt: skip
    # The token, the count, the page, one aggregate of figures, and for all the nodes
    # together their running and last runs: the ids (a few rows each by an index), the runs.
    with django_assert_num_queries(4 + 2):
        listed = api.get("/api/v1/nodes/").data["results"]
    for node in listed:
        mine = Run.objects.filter(worker=f"{node['name']}@h")
        assert [r["id"] for r in node["last_runs"]] == [
            r.id for r in mine.order_by("-queued_at", "-id")[:5]
        ]
        assert [r["id"] for r in node["running"]] == [
            r.id for r in mine.filter(status="running").order_by("-started_at")
        ]
    assert listed == [api.get(f"/api/v1/nodes/{node['id']}/").data for node in listed]


def test_the_node_pages_show_only_the_running_runs_the_viewer_may_see(client, owner, fleet):
    """The viewer's access rules limit the running runs on the node pages; the admin is one
    instance for all requests, so the viewer is never kept on it: outside a page the
    column shows nothing."""
    staff = get_user_model().objects.create_user("staffer", password="staff-pw-123",
                                                 is_staff=True)  # fmt: skip
    staff.user_permissions.add(Permission.objects.get(codename="view_node"))
    job = make_job(owner, name="owners-secret-job")
    Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now(),
                       status=Run.Status.RUNNING, worker="db1@h")  # fmt: skip
    client.force_login(staff)

    listed = client.get("/admin/scheduler_app/node/")
    one = client.get(f"/admin/scheduler_app/node/{fleet[0].id}/change/")

    assert listed.status_code == one.status_code == 200
    assert "owners-secret-job" not in listed.content.decode() + one.content.decode()
    assert NodeAdmin(Node, admin.site).running_runs(fleet[0]) == "-"


def presence_reads(redis_client) -> int:
    """How many times Redis was asked for presences (ZMSCORE), as Redis counts them."""
    return int(redis_client.info("commandstats").get("cmdstat_zmscore", {}).get("calls", 0))


def admin_node_list(client, redis_client) -> tuple[str, int, int]:
    """The admin's list of nodes; the SQL queries and Redis reads it took."""
    before = presence_reads(redis_client)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/admin/scheduler_app/node/").content.decode()
    return page, len(queries), presence_reads(redis_client) - before


def test_the_admin_list_of_nodes_reads_states_and_runs_once_per_page(client, owner, fleet,
                                                                     redis_client):  # fmt: skip
    client.force_login(get_user_model().objects.create_superuser("root3", password="root-pw-123"))
    job = make_job(owner, name="busy-job")
    runs = [Run.objects.create(job=job, trigger="manual", scheduled_for=timezone.now(),
                               status=Run.Status.RUNNING, worker=node.hostname)
            for node in (fleet[0], fleet[0], fleet[2])]  # fmt: skip
    _, few_queries, few_reads = admin_node_list(client, redis_client)
    now = timezone.now()
    for index in range(6):
        node = Node.objects.create(name=f"more{index}", hostname=f"more{index}@h", last_seen=now)
        Run.objects.create(job=job, trigger="manual", scheduled_for=now + timedelta(index),
                           status=Run.Status.RUNNING, worker=node.hostname)  # fmt: skip

    page, many_queries, many_reads = admin_node_list(client, redis_client)

    assert (many_queries, many_reads) == (few_queries, few_reads) == (many_queries, 1)
    assert page.count("cf-badge") == 9 and page.count(">online<") == 7
    assert all(f"#{run.id} busy-job" in page for run in runs)


def test_targeted_nodes_are_sent_in_the_order_the_job_names_them(owner):
    """nodes as listed, then each group's (its listed nodes, then its selector's by name),
    then the labels' by name; with max_parallel the next one waiting is the next so named."""
    now = timezone.now()
    for name, labels in (("a", {"role": "web"}), ("b", {}), ("c", {}), ("d", {"tier": "1"}),
                         ("e", {"tier": "1"}), ("f", {"role": "web"})):  # fmt: skip
        Node.objects.create(name=name, hostname=f"{name}@h", labels=labels, last_seen=now)
    NodeGroup.objects.create(name="g", nodes=["e", "c"], selector="tier=1")
    targets = {"nodes": ["f", "b"], "groups": ["g"], "labels": "role=web"}
    assert [node.name for node in nodes.resolve(targets)] == ["f", "b", "e", "c", "d", "a"]

    job = make_job(owner, name="rolling", targets=targets, max_parallel=2,
                   schedule={"type": "manual"})  # fmt: skip
    parent = Run.objects.create(job=job, trigger="manual", scheduled_for=now)
    services.claim_run(parent.id, "x@h")
    services.target(Run.objects.select_related("job").get(id=parent.id))

    def sent() -> list[str]:
        children = parent.children.exclude(status=Run.Status.WAITING).order_by("id")
        return [child.node.split("@")[0] for child in children]

    assert sent() == ["f", "b"]
    first = services.claim_run(parent.children.get(node="f@h").id, "f@h")
    services.finish_run(Run.objects.select_related("job").get(id=first.id), Run.Status.SUCCEEDED)
    assert sent() == ["f", "b", "e"]
