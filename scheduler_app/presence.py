"""Signs of life in Redis, for GET /metrics: each worker's last presence, and beat's
last tick. Each costs one Redis command to write and one to read, whatever the fleet's
size, where asking the workers (a broadcast ping) waits out its whole timeout.

Workers write their presence every WORKER_PRESENCE_EVERY seconds (workers/presence.py);
a worker not seen for three periods is counted down. Beat writes its tick in the
pipeline each tick sends anyway (scheduler_app/redbeat.py), so it costs no round trip.
"""

from __future__ import annotations

import time

from redis import Redis
from redis.client import Pipeline

WORKERS_KEY = "cronfleet:workers"  # a sorted set: node name -> unix time last seen
DRAINING_KEY = "cronfleet:draining"  # a set: the nodes an operator is draining
MISSED_PERIODS = 3  # a worker silent this many periods is down
FORGET_AFTER = 86400.0  # seconds: a worker gone this long leaves the set


def tick_key(prefix: str) -> str:
    """Beat's last tick (unix time), beside RedBeat's own keys (``prefix``: its prefix)."""
    return prefix + ":tick"


def worker_seen(client: Redis, node: str, now: float | None = None) -> bool:
    """Record that ``node`` is alive now; forget the workers gone for a day. Returns
    whether the node is to drain (asked in the same round trip)."""
    now = time.time() if now is None else now
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(WORKERS_KEY, {node: now})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - FORGET_AFTER)
        pipe.sismember(DRAINING_KEY, node)
        return bool(pipe.execute()[-1])


def set_draining(client: Redis, node: str, draining: bool) -> None:
    """Tell ``node`` (at its next presence write) to drain, or to take work again."""
    if draining:
        client.sadd(DRAINING_KEY, node)
    else:
        client.srem(DRAINING_KEY, node)


def last_seen(client: Redis, nodes: list[str]) -> dict[str, float]:
    """The unix time each of ``nodes`` was last seen, for those in the set (one command)."""
    if not nodes:
        return {}
    times = client.zmscore(WORKERS_KEY, nodes)
    return {node: float(t) for node, t in zip(nodes, times, strict=True) if t is not None}


def worker_gone(client: Redis, node: str) -> None:
    """A worker that stops says so, rather than being counted up for three more periods."""
    client.zrem(WORKERS_KEY, node)


def count_workers_up(pipe: Pipeline, every: float, now: float | None = None) -> None:
    """Queue, on ``pipe``, the count of workers seen within MISSED_PERIODS periods."""
    now = time.time() if now is None else now
    pipe.zcount(WORKERS_KEY, now - MISSED_PERIODS * every, "+inf")
