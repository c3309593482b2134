"""What the beat benchmarks share: a private Redis and database, progress, the figures.

Each ``bench_beat_*.py`` script imports this first: it starts a Redis of its own and
points Django at a throw-away SQLite database before Django reads its settings, so a
benchmark never touches the Redis on 6379 or anyone's database. The baselines (bare
RedBeat, plain entries) are written in the scripts themselves, never taken from
``scheduler_app``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler_app.embedded_redis import EmbeddedRedis, free_port


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    return parser.parse_args()


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@contextmanager
def private_stack(name: str, **env: str) -> Iterator[EmbeddedRedis]:
    """A Redis and a SQLite database of this run's own, with Django set up on them."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    server = EmbeddedRedis.start(tmp / "redis", free_port(), persist=False)
    os.environ.update(
        VAR_DIR=str(tmp), DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}", DEBUG="1",
        REDIS_URL=server.url, DJANGO_SETTINGS_MODULE="config.settings", **env,
    )  # fmt: skip
    try:
        import django

        django.setup()
        from django.core.management import call_command

        progress("migrating a fresh database")
        call_command("migrate", verbosity=0)
        yield server
    finally:
        server.stop()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in a session of its own, and all it started: TERM, then
    KILL after a minute."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_jobs(count: int, schedule_for: Any, start: datetime | None = None) -> list[int]:
    """``count`` jobs in bulk (no per-job save, no entry written): ``schedule_for(i)`` is
    the i-th job's canonical schedule. Returns their ids."""
    from django.contrib.auth import get_user_model

    from scheduler_app.models import Job

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    start = start or datetime.now(UTC)
    first = Job.objects.count()
    made: list[int] = []
    for offset in range(0, count, 5000):
        rows = [
            Job(
                owner=owner,
                name=f"bench-{first + i}",
                kind="command",
                payload={"command": "true"},
                schedule=schedule_for(i),
                timezone="UTC",
                schedule_start=start,
            )
            for i in range(offset, min(offset + 5000, count))
        ]
        made += [job.id for job in Job.objects.bulk_create(rows)]
        progress(f"jobs made: {len(made)}/{count}")
    return made


def at_second(moment: datetime) -> dict[str, str]:
    """A seconds cron that fires daily at ``moment`` (UTC, whole second)."""
    return {"type": "cron", "expression": f"{moment.second} {moment.minute} {moment.hour} * * *"}


def next_whole_second(after: float) -> datetime:
    return datetime.fromtimestamp(int(time.time() + after) + 1, UTC)


def queue_lists(queue: str) -> list[str]:
    """The Redis lists of ``queue``: one per priority, named with kombu's separator (ours
    ``:``, its default ``\x06\x16``). Named, not SCANned: a SCAN walks every key of a Redis
    holding 100,000 entries."""
    return [queue] + [f"{queue}{sep}{p}" for sep in (":", "\x06\x16") for p in range(1, 10)]


def queued(client: Any, queue: str) -> int:
    """Messages waiting in ``queue``."""
    with client.pipeline(transaction=False) as pipe:
        for name in queue_lists(queue):
            pipe.llen(name)
        return sum(pipe.execute())


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def report(figure: str, goal: str, ours: str, baseline: str, ratio: float | None,
           met: bool | None) -> None:  # fmt: skip
    """Print one figure, and append it to $BENCH_RESULTS as a JSON line when set."""
    ratio_text = "" if ratio is None else ratio_format(ratio)
    verdict = {True: "met", False: "NOT met", None: "-"}[met]
    print(
        f"{figure}: ours {ours}, baseline {baseline}, ratio {ratio_text} (goal {goal}: {verdict})"
    )
    results = os.environ.get("BENCH_RESULTS")
    if results:
        line = {"figure": figure, "goal": goal, "ours": ours, "baseline": baseline,
                "ratio": ratio_text, "met": met}  # fmt: skip
        with open(results, "a") as out:
            out.write(json.dumps(line) + "\n")


def ratio_format(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.4f}x"


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1e3:.1f} ms"


__all__ = ["UTC", "datetime", "timedelta"]


def bare_definition(entry: Any, plan: Any) -> dict[str, Any]:
    """A plain RedBeat entry's definition (the baselines' entries), as RedBeat writes it."""
    return {
        "name": entry.name,
        "task": entry.task,
        "args": [],
        "kwargs": {},
        "options": {"queue": "bare"},
        "schedule": plan,
        "enabled": True,
    }


def with_lock(scheduler: Any) -> Any:
    """The scheduler holding RedBeat's lock, as a beat process takes it at start."""
    from redbeat.schedulers import acquire_distributed_beat_lock

    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    return scheduler
