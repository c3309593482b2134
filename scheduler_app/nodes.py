"""The fleet: nodes (the workers, as each registered itself), their state, node groups,
and what a job's ``targets`` name.

A node's last sign of life is its presence in Redis (scheduler_app/presence.py,
written every WORKER_PRESENCE_EVERY seconds) or, slower, its ``last_seen`` row
(SCHEDULER_NODE_DB_EVERY seconds); the fresher of the two says whether it is online.
Draining is the operator's word, kept in the row and told to the node through Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from scheduler_app import metrics, presence, selectors
from scheduler_app.models import Node, NodeGroup, Run

logger = logging.getLogger(__name__)

ONLINE, OFFLINE, DRAINING = "online", "offline", "draining"
STATS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Seen:
    """A node's freshest sign of life and the state it gives."""

    last_seen: datetime
    state: str


def state_of(last_seen: datetime, draining: bool, now: datetime, offline_after: float) -> str:
    """offline when silent for ``offline_after`` seconds, else draining or online."""
    if (now - last_seen).total_seconds() > offline_after:
        return OFFLINE
    return DRAINING if draining else ONLINE


def seen(nodes: Iterable[Node]) -> dict[int, Seen]:
    """Each node's state by id, from Redis's presence (one command) and its row."""
    nodes = list(nodes)
    answered = True
    try:
        in_redis = presence.last_seen(_redis(), [node.hostname for node in nodes])
    except redis.RedisError as exc:  # the rows alone, a DB refresh old at most
        logger.warning("nodes: Redis does not answer: %s", exc)
        in_redis, answered = {}, False
    now = timezone.now()
    found = {}
    for node in nodes:
        last = node.last_seen
        if node.hostname in in_redis:
            last = max(last, datetime.fromtimestamp(in_redis[node.hostname], tz=UTC))
        silence = offline_after(node, redis_answered=answered)
        found[node.id] = Seen(last, state_of(last, node.draining, now, silence))
    return found


def offline_after(node: Node, redis_answered: bool = True) -> float:
    """The silence after which ``node`` is offline: SCHEDULER_NODE_OFFLINE_AFTER, or three
    of the node's own presence periods if longer (each process may have its own period);
    with Redis away, the rows alone tell, refreshed every SCHEDULER_NODE_DB_EVERY."""
    silence = max(float(settings.SCHEDULER_NODE_OFFLINE_AFTER),
                  presence.MISSED_PERIODS * node.presence_every)  # fmt: skip
    return silence if redis_answered else silence + settings.SCHEDULER_NODE_DB_EVERY


def register(hostname: str, **fields: Any) -> Node:
    """The node a worker starting up is (by its name); its draining flag is kept."""
    fields = dict(fields)
    name = fields.pop("name", "") or hostname
    now = timezone.now()
    with transaction.atomic():
        Node.objects.filter(hostname=hostname).exclude(name=name).delete()  # renamed
        node, _ = Node.objects.update_or_create(
            name=name, defaults={"hostname": hostname, "started_at": now, "last_seen": now,
                                 **fields},
        )  # fmt: skip
    return node


def touch(hostname: str) -> bool | None:
    """The slower sign of life, in the row; returns whether the node is draining (None
    for a node with no row: registered by nobody, or deleted)."""
    updated = Node.objects.filter(hostname=hostname).update(last_seen=timezone.now())
    if not updated:
        return None
    return Node.objects.filter(hostname=hostname).values_list("draining", flat=True).first()


def set_draining(node: Node, draining: bool) -> None:
    """Record the operator's word and tell the node now (it also reads its row)."""
    Node.objects.filter(id=node.id).update(draining=draining)
    node.draining = draining
    try:
        presence.set_draining(_redis(), node.hostname, draining)
    except redis.RedisError as exc:
        logger.warning("nodes: Redis does not answer; %s learns it from its row: %s",
                       node.name, exc)  # fmt: skip


def members(group: NodeGroup, nodes: Iterable[Node]) -> list[Node]:
    """The nodes of ``nodes`` that ``group`` holds: listed by name, or matched by its selector."""
    listed = set(group.nodes)
    selector = selectors.parse(group.selector) if group.selector else None
    matched = (lambda node: selector.matches(node.labels)) if selector else (lambda node: False)
    return [node for node in nodes if node.name in listed or matched(node)]


def resolve(targets: Mapping[str, Any]) -> list[Node]:
    """The nodes a job's targets name, once each, in the order the job gives them (the
    order children are sent in under max_parallel): ``nodes`` as listed; then each of
    ``groups`` as listed, its own listed nodes first, then those its selector matches,
    by name; then those ``labels`` match, by name."""
    every = list(Node.objects.order_by("name"))
    by_name = {node.name: node for node in every}
    found: dict[str, Node] = {}  # insertion-ordered: a node keeps its first place

    def add(names: Iterable[str]) -> None:
        for name in names:
            if name in by_name:
                found.setdefault(name, by_name[name])

    add(targets.get("nodes", []))
    groups = {g.name: g for g in NodeGroup.objects.filter(name__in=targets.get("groups", []))}
    for group in (groups[name] for name in targets.get("groups", []) if name in groups):
        add(group.nodes)
        add(node.name for node in members(group, every))
    if targets.get("labels"):
        selector = selectors.parse(targets["labels"])
        add(node.name for node in every if selector.matches(node.labels))
    return list(found.values())


def unknown_names(targets: Mapping[str, Any]) -> list[str]:
    """What in ``targets`` names no node or group, as messages."""
    problems = []
    for key, model in (("nodes", Node), ("groups", NodeGroup)):
        names = targets.get(key, [])
        known = set(model.objects.filter(name__in=names).values_list("name", flat=True))
        problems += [f"{key}: no {key[:-1]} is named {name!r}." for name in names
                     if name not in known]  # fmt: skip
    return problems


def stats(nodes: Iterable[Node], runs: QuerySet[Run] | None = None) -> dict[str, dict[str, int]]:
    """Runs and failures (of ``runs``, default all) that ended in the last 24 h, by node
    hostname: one aggregate over the runs finished since then (an index on finished_at)."""
    hostnames = [node.hostname for node in nodes]
    since = timezone.now() - STATS_WINDOW
    rows = (
        (Run.objects.all() if runs is None else runs)
        .filter(finished_at__gte=since, worker__in=hostnames)
        .order_by()
        .values("worker")
        .annotate(runs=Count("id"), failures=Count("id", filter=Q(status__in=Run.FAILURES)))
    )
    found = {row["worker"]: {"runs_24h": row["runs"], "failures_24h": row["failures"]}
             for row in rows}  # fmt: skip
    return {host: found.get(host, {"runs_24h": 0, "failures_24h": 0}) for host in hostnames}


def _redis() -> redis.Redis:
    return metrics.redis_client(settings.REDIS_URL)
