"""Fan-out: one run of a job on every live worker of its queue, and its verdict.

The parent run is claimed like any run; instead of executing, it gets one child
run per node that consumes the job's queue, each sent to that node's own queue
(Celery's ``worker_direct``). When the last child ends, the parent ends:
``succeeded`` when at least ``quorum`` nodes succeeded (default: all of them),
else ``failed``. Retries, notifications and dependencies then follow from the
parent. This module decides; :mod:`scheduler_app.services` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scheduler_app.models import Run


@dataclass(frozen=True)
class Verdict:
    """How a fan-out stands: its summary, and once every child ended, how it ended."""

    summary: dict[str, Any]
    status: str | None = None  # None while children still run
    error: str = ""


def summary(children: dict[str, str], quorum: int | None) -> dict[str, Any]:
    """{"nodes": {node: status}, "succeeded": n, "quorum": q} for the children's statuses."""
    return {
        "nodes": dict(sorted(children.items())),
        "succeeded": sum(status == Run.Status.SUCCEEDED for status in children.values()),
        "quorum": min(quorum or len(children), len(children)),
    }


def verdict(children: dict[str, str], quorum: int | None) -> Verdict:
    """The parent's verdict from its children's statuses by node."""
    now = summary(children, quorum)
    if not all(status in Run.FINISHED for status in children.values()):
        return Verdict(now)
    if now["succeeded"] >= now["quorum"]:
        return Verdict(now, Run.Status.SUCCEEDED)
    error = f"{now['succeeded']} of {len(children)} nodes succeeded; quorum is {now['quorum']}."
    return Verdict(now, Run.Status.FAILED, error)
