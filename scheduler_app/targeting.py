"""Targeting: which nodes a targeted run goes to, and when each child is sent.

A job with ``targets`` runs like a fan-out (scheduler_app/fanout.py gives the
parent's verdict), but on the nodes its targets name rather than on the workers of
its queue. ``target_mode`` ``each`` makes one child per node: a node offline or
draining gets a child ``skipped`` with the reason, so each node's record is
complete; ``max_parallel`` sends that many at a time (the others wait, and the next
is sent as one ends, in the order the targets name the nodes: nodes.resolve) and
``halt_on_failure`` skips the waiting ones after a failure.
``any`` makes one child, on the least busy online node. Plain functions: this module
decides, :mod:`scheduler_app.services` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler_app.models import Run

ONLINE = "online"


@dataclass(frozen=True)
class Candidate:
    """A targeted node: its name, its Celery hostname, its state, the runs it runs."""

    name: str
    hostname: str
    state: str
    running: int = 0


@dataclass(frozen=True)
class Child:
    """A child to make: on ``hostname``; sent now, left waiting, or skipped with a reason."""

    hostname: str
    send: bool
    skip_reason: str = ""


def plan_each(candidates: list[Candidate], max_parallel: int | None) -> list[Child]:
    """One child per node: the first ``max_parallel`` online ones sent, the other online
    ones waiting, the others skipped with their state."""
    children: list[Child] = []
    sent = 0
    for node in candidates:
        if node.state != ONLINE:
            children.append(Child(node.hostname, False, f"skipped: node {node.name} is "
                                                        f"{node.state}"))  # fmt: skip
            continue
        send = max_parallel is None or sent < max_parallel
        sent += send
        children.append(Child(node.hostname, send))
    return children


def pick_any(candidates: list[Candidate]) -> Candidate | None:
    """The online node running the fewest runs (by name among equals), or None."""
    online = [node for node in candidates if node.state == ONLINE]
    return min(online, key=lambda node: (node.running, node.name), default=None)


def none_online(candidates: list[Candidate]) -> str:
    """Why an ``any`` run found no node."""
    if not candidates:
        return "the targets match no node."
    states = ", ".join(f"{node.name} ({node.state})" for node in candidates)
    return f"no targeted node is online: {states}."


@dataclass(frozen=True)
class Next:
    """What follows a child's end: the waiting children to send, those to skip."""

    send: list[int]
    skip: list[int]
    reason: str = ""


def after_child(
    ended: Run, statuses: list[tuple[int, str]], max_parallel: int | None, halt: bool
) -> Next:
    """Given the children's (id, status) in order, as ``ended`` ended: send the next
    waiting ones up to ``max_parallel`` running, or after a failure with ``halt``,
    skip every waiting one."""
    waiting = [run_id for run_id, status in statuses if status == Run.Status.WAITING]
    if halt and ended.status in (*Run.FAILURES, Run.Status.CANCELLED):
        reason = f"skipped: halted after the run on {ended.node} {ended.status} (halt_on_failure)"
        return Next([], waiting, reason)
    busy = sum(status in (Run.Status.QUEUED, Run.Status.RUNNING) for _, status in statuses)
    room = len(waiting) if max_parallel is None else max(max_parallel - busy, 0)
    return Next(waiting[:room], [])
