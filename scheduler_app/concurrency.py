"""Whether a run may start, by its job's ``concurrency_policy``: a decision, made from
the runs the caller found running with the job's row locked (see ``services.claim_run``),
so that it holds across any number of nodes.

- ``forbid``: a run that finds another running is skipped, with the reason.
- ``allow``: up to ``max_concurrent`` at once (unlimited when unset); past it, skipped.
- ``replace``: the running ones are cancelled (their nodes stop them within a
  second) and this one starts.
- ``queue_one``: this one waits (status ``waiting``) and starts when the running
  one ends; at most one waits, a further one is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler_app.models import Job

Policy = Job.ConcurrencyPolicy


@dataclass(frozen=True)
class Admission:
    """What to do with a run about to start: start it (after cancelling ``replace``),
    or skip it, or let it wait, with the reason."""

    start: bool
    skip: str = ""
    wait: str = ""
    replace: tuple[int, ...] = field(default=())


START = Admission(start=True)


def admit(
    policy: str, max_concurrent: int | None, running: list[int], another_waits: bool
) -> Admission:
    """The decision for a run of a job with ``policy``, while the runs ``running`` (ids,
    oldest first) run and, under queue_one, ``another_waits`` or not."""
    if not running:
        return START
    if policy == Policy.REPLACE:
        return Admission(start=True, replace=tuple(running))
    if policy == Policy.ALLOW:
        if max_concurrent is None or len(running) < max_concurrent:
            return START
        return Admission(
            start=False,
            skip=f"skipped: {len(running)} runs are running, max_concurrent is {max_concurrent}",
        )
    if policy == Policy.QUEUE_ONE and not another_waits:
        return Admission(start=False, wait=f"waiting: run {running[0]} is still running")
    return Admission(start=False, skip=f"skipped: run {running[0]} is still running")
