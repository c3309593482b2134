"""Two worker hosts on one machine, each in a network namespace of its own with its own
address (tests/faults/netns.py), reaching Redis and the database over their links, as
workers on other machines would: a job targeting each host runs once on each and records
both; cutting the link of the host running a long job makes its run ``lost`` (no heartbeat
reaches the database) and retried on the other host, and nothing completes twice.

The server side stays in the root namespace: a Redis of its own bound to the bridge's
address (and loopback, for the web server and beat beside it), and on PostgreSQL a
forwarder from that address to 127.0.0.1:5432, where PostgreSQL listens. On SQLite the
hosts share the database file: a fan-out works, but a cut link does not cut a host from
a file, so the cut is tested on PostgreSQL only (CI's second run). Without root or
``ip netns`` the tests are skipped, saying why.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import F
from rest_framework.authtoken.models import Token

from scheduler_app.embedded_redis import EmbeddedRedis, free_port
from scheduler_app.models import Run
from tests.faults import netns
from tests.faults.measure import Ledger, count, reap_bound, settle
from tests.faults.own import Http, OwnStack
from tests.faults.proxy import TcpProxy
from tests.helpers import CELERY, Stack, processes_running, test_database_url, wait_for, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
LABELS = ("role=app,zone=eu", "role=db,zone=us")


@dataclass
class Hosts:
    network: netns.Network
    own: OwnStack
    http: Http
    nodes: dict[str, netns.Host]  # SCHEDULER_NODE_NAME -> its host
    on_sqlite: bool

    def host_of(self, run: Run) -> netns.Host:
        """The host whose worker holds the run (its worker is ``name@machine``)."""
        return self.nodes[run.worker.partition("@")[0]]


def start_host_worker(live: Stack, host: netns.Host, name: str, labels: str, env: dict) -> None:
    """A worker inside ``host``, as a user there would start it, logging beside the stack's."""
    log = (live.logs / f"own-{name}.log").open("ab")
    args = ["worker", "-n", f"{name}@%h", "-Q", "default", "-c", "2", "-l", "info",
            "--without-mingle", "--without-gossip"]  # fmt: skip
    node_env = {"SCHEDULER_NODE_NAME": name, "SCHEDULER_NODE_LABELS": labels}
    live.procs[f"own-{name}"] = subprocess.Popen(
        host.command(*CELERY, *args), env={**live.env, **env, **node_env},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def database_for_hosts(server: str) -> tuple[str, TcpProxy | None]:
    """The test database as the hosts reach it: the shared SQLite file, or PostgreSQL
    through a forwarder on the server's address."""
    if connection.vendor == "sqlite":
        return test_database_url(), None
    db = connection.settings_dict
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)), host=server)
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{server}:{proxy.port}/{db['NAME']}", proxy


@pytest.fixture
def hosts(live: Stack, api, owner, tmp_path: Path) -> Iterator[Hosts]:
    """Two hosts, a worker in each, and a web server and beat on their Redis; the test
    talks to that web server with the owner's token (``api`` made it). Everything is
    stopped, and the namespaces deleted, whatever happened."""
    if reason := netns.unavailable():
        pytest.skip(f"no network namespaces here ({reason}): the multi-host test needs them")
    network = netns.Network(2)
    proxy = None
    try:
        redis = EmbeddedRedis.start(tmp_path / "redis", free_port(), persist=False,
                                    also_bind=(network.server,))  # fmt: skip
        own = OwnStack(live, redis, env={"DATABASE_URL": test_database_url()})
        live.stop("beat")  # only this stack's beat fires and sweeps (``live`` restarts it)
        try:
            database, proxy = database_for_hosts(network.server)
            host_env = {"REDIS_URL": f"redis://:{redis.password}@{network.server}:{redis.port}/0",
                        "DATABASE_URL": database}  # fmt: skip
            nodes = {}
            for n, (host, labels) in enumerate(zip(network.hosts, LABELS, strict=True)):
                name = f"host{n}-{host.namespace.split('-')[1]}"
                start_host_worker(live, host, name, labels, host_env)
                nodes[name] = host
            http = Http(own.start_web(), Token.objects.get(user=owner).key)
            own.start_beat()
            own.wait_workers(2)
            yield Hosts(network, own, http, nodes, on_sqlite=proxy is None)
        finally:
            own.stop_all()
            redis.stop()
            if proxy is not None:
                proxy.close()
    finally:
        network.close()


def node_states(http: Http) -> dict[str, dict] | None:
    """GET /api/v1/nodes/ by node name, or None where the API has no nodes yet (issue 11's
    nodes, from the branch ``fleet``: ``name`` is SCHEDULER_NODE_NAME, ``state`` online,
    offline or draining, ``address`` the one the node reaches the broker from)."""
    status, data, _ = http.get("/api/v1/nodes/")
    if status == 404:
        return None
    assert status == 200, data
    return {node["name"]: node for node in data.get("results", data)}


def test_a_job_targeting_each_host_runs_once_on_each_and_records_both(hosts, figures):
    # Each child prints the addresses of the host it ran on, from inside its namespace.
    show = f"{shutil.which('ip')} -4 -o addr show"
    job = hosts.http.create_job(name="on-each-host", schedule="manual", quorum=2,
                                targets={"nodes": list(hosts.nodes)}, target_mode="each",
                                payload={"command": show})  # fmt: skip
    started = time.monotonic()
    parent_id = hosts.http.run_now(job)
    (parent,) = wait_runs(job["id"], 1, timeout=60, id=parent_id, status__in=Run.FINISHED)
    took = time.monotonic() - started

    assert parent.status == Run.Status.SUCCEEDED, parent.error
    children = list(Run.objects.filter(parent_id=parent_id))
    ran_on = {child.worker.partition("@")[0] for child in children}
    assert len(children) == 2 and ran_on == set(hosts.nodes), [c.worker for c in children]
    assert parent.result["nodes"] == {child.node: "succeeded" for child in children}
    for child in children:
        host = hosts.host_of(child)
        others = [h.address for h in hosts.nodes.values() if h != host]
        assert child.status == Run.Status.SUCCEEDED, child.error
        assert f"inet {host.address}/" in child.output, child.output
        assert not any(f"inet {other}/" in child.output for other in others), child.output
    if (states := node_states(hosts.http)) is not None:
        for name, labels in zip(hosts.nodes, LABELS, strict=True):
            node = states[name]
            assert node["state"] == "online" and node["address"] == hosts.nodes[name].address
            assert node["labels"] == dict(pair.split("=") for pair in labels.split(",")), node
    api_said = "checked" if states is not None else "absent"
    figures("fan-out over two namespaced hosts", children=len(children), nodes_api=api_said,
            took=f"{took:.1f} s")  # fmt: skip


def test_a_cut_host_s_run_is_lost_and_retried_on_the_other_host(hosts, live, figures, job_tmp_path):
    if hosts.on_sqlite:
        pytest.skip(
            "on SQLite the hosts share the database file, which a cut link does "
            "not cut: the cut is tested on PostgreSQL (DATABASE_URL=postgres://)"
        )
    ledger = Ledger(job_tmp_path / "ledger")
    marker = str(random.randint(3000, 9999))  # this run's orphan is "sleep <marker>"
    long = hosts.http.create_job(
        name="long", schedule="manual", max_retries=1,
        payload={"command": ledger.command(f'[ "$SCHEDULER_ATTEMPT" != 1 ] || sleep {marker}')},
    )  # fmt: skip
    first = hosts.http.run_now(long)
    (running,) = wait_runs(long["id"], 1, timeout=30, id=first, status=Run.Status.RUNNING)
    wait_for(lambda: Run.objects.filter(id=first, heartbeat_at__gt=F("started_at")).exists(),
             timeout=30)  # a heartbeat after its start: the host is seen alive first  # fmt: skip
    try:
        lost_after, recovered, killed_after = cut_while_running(hosts, live, running, marker)
    finally:
        for proc in processes_running("sleep", marker):  # left only by a failure
            proc.kill()
    assert settle([long["id"]], timeout=30)
    tally = count([long["id"]], ledger)
    figures("a host's link cut mid-run (network namespaces)", **tally.numbers("runs_started"),
            lost_after=f"{lost_after:.1f} s", time_to_recover=f"{recovered:.1f} s",
            orphan_killed_after=f"{killed_after:.1f} s")  # fmt: skip
    assert (tally.completed, tally.lost, tally.doubled, tally.stuck) == (1, 0, 0, 0)
    assert tally.reaped == 1


def cut_while_running(hosts: Hosts, live: Stack, running: Run, marker: str) -> tuple[float, ...]:
    """Cut the link of the host running ``running``, see it lost and retried on the other
    host, restore the link and see the host kill what the lost run left; the seconds from
    the cut to each."""
    victim, job_id = hosts.host_of(running), running.job_id
    try:
        hosts.network.cut(victim)
        started = time.monotonic()
        (lost,) = wait_runs(job_id, 1, timeout=60, id=running.id, status=Run.Status.LOST)
        lost_after = time.monotonic() - started
        (retry,) = wait_runs(job_id, 1, timeout=60, attempt=2, status=Run.Status.SUCCEEDED)
        recovered = time.monotonic() - started
        assert hosts.host_of(retry) != victim and retry.trigger == "retry", retry.worker
        assert lost.error.startswith("lost: no heartbeat since "), lost.error
        assert lost_after < reap_bound(live.env), lost_after
        assert processes_running("sleep", marker)  # the cut host cannot be told yet
        victim_name = running.worker.partition("@")[0]
        if node_states(hosts.http) is not None:
            wait_for(lambda: node_states(hosts.http)[victim_name]["state"] == "offline", 60)
    finally:
        hosts.network.restore(victim)
    # Back on the network, the host reads the kill order the sweep sent it.
    wait_for(lambda: not processes_running("sleep", marker), timeout=60)
    return lost_after, recovered, time.monotonic() - started
