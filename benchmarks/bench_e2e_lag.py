"""End to end under steady load: 300 interval jobs every 5 s, a real beat, 2 worker processes.

Ours: ``celery -A config beat`` and ``celery -A config worker -c 2`` as ``make run``
starts them, on a private Redis and SQLite database; 300 command jobs (``true``) every
5 s, their grids spread over the 5 s (60 runs a second wanted). The figure is a run's
start lag as the database recorded it (``started_at - scheduled_for``, p50 and p99), and
whether every slot of the grids in the window ran exactly once (runs = slots).

Baseline, written here: bare RedBeat's scheduler in a real ``celery beat`` with 300
plain 5 s interval entries spread the same way, and a bare Celery worker (2 processes)
whose task runs ``true`` in a subprocess and writes one row with its due time and start
to the same kind of database. Its due time is the entry's, given to the task by a
RedBeat subclass that only adds it to the message.

    .venv/bin/python benchmarks/bench_e2e_lag.py [--quick]
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import beatkit
from celery import Celery
from redbeat.schedulers import RedBeatScheduler

JOBS = 300
EVERY = 5.0
SECONDS, QUICK_SECONDS = 120, 40
GOAL_P99 = 0.25
ROOT = Path(__file__).resolve().parent.parent

# --- the baseline, loaded by its own beat and worker as bench_e2e_lag:bare ---------------

bare = Celery("bare", broker=os.environ.get("BARE_BROKER", "memory://"))
bare.conf.update(
    redbeat_redis_url=os.environ.get("BARE_BROKER", ""), redbeat_key_prefix="bare:",
    redbeat_lock_timeout=10, beat_max_loop_interval=1, task_acks_late=True,
    worker_prefetch_multiplier=1,
)  # fmt: skip


class Timed(RedBeatScheduler):
    """Bare RedBeat, whose messages also carry the entry's due time (for the lag)."""

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any):
        entry.kwargs = {"due": (entry.last_run_at + timedelta(seconds=EVERY)).timestamp()}
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)


@bare.task(name="bare.run_true")
def run_true(due: float = 0.0) -> None:
    started = time.time()
    subprocess.run(["/bin/sh", "-c", "true"], check=False)
    with sqlite3.connect(os.environ["BARE_DATABASE"], timeout=30) as db:
        db.execute("INSERT INTO bare_runs (due, started) VALUES (?, ?)", (due, started))


# --- the driver ---------------------------------------------------------------------------


def celery(app: str, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, *args, "-l", "warning"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


WORKER = ["worker", "-c", "2", "--without-mingle", "--without-gossip"]


def grid_slots(anchor: float, start: float, end: float) -> int:
    """Fire times ``anchor + k * EVERY`` (k >= 1) inside [start, end]."""
    first = max(1, int((start - anchor) // EVERY) + 1)
    last = int((end - anchor) // EVERY)
    return max(0, last - first + 1)


def hold(seconds: float, label: str, procs: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """Let the processes run for ``seconds`` with progress; the window (start, end)."""
    start = time.time()
    while (left := start + seconds - time.time()) > 0:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: {proc.args[4:6]} exited with {proc.returncode}")
        beatkit.progress(f"{label}: {left:.0f} s left")
        time.sleep(min(5.0, left))
    return start, time.time()


def drain(label: str, started: Any, wanted: int) -> None:
    """Wait until ``started()`` reaches ``wanted``, so that the queue left at the end of
    the window is worked off and late runs count with their lag; given up when nothing
    moved for 15 s (a slot that was never sent, as bare RedBeat thins them)."""
    last, moved = -1, time.time()
    while (count := started()) < wanted and time.time() - moved < 15:
        if count != last:
            beatkit.progress(f"{label}: {count}/{wanted} of the window's runs started")
            last, moved = count, time.time()
        time.sleep(1)


def ours(seconds: float, tmp: Path) -> dict[str, Any]:
    from django.db import connection

    from scheduler_app.models import Job, Run

    base = datetime.now(UTC) + timedelta(seconds=10)
    beatkit.make_jobs(JOBS, lambda i: {"type": "interval", "every": 5, "unit": "seconds"})
    anchors = {}
    for i, job_id in enumerate(Job.objects.order_by("id").values_list("id", flat=True)):
        anchors[job_id] = base + timedelta(seconds=i * EVERY / JOBS)
        Job.objects.filter(id=job_id).update(schedule_start=anchors[job_id])
    connection.close()
    log = tmp / "ours.log"
    env = dict(os.environ)
    worker = celery("config", [*WORKER, "-n", "ours@%h", "-Q", "default"], log, env)
    beat = celery("config", ["beat"], log, env)
    try:
        beatkit.progress(f"ours: {JOBS} jobs every 5 s for {seconds:g} s")
        start, end = hold(seconds + 10, "ours", [worker, beat])
        window = (start + 15, end - 1)  # beat's start and the first grid slot left out
        beatkit.stop_group(beat)
        in_window = Run.objects.filter(
            scheduled_for__gte=datetime.fromtimestamp(window[0], UTC),
            scheduled_for__lte=datetime.fromtimestamp(window[1], UTC), trigger="schedule",
        )  # fmt: skip
        slots = sum(grid_slots(a.timestamp(), *window) for a in anchors.values())
        drain("ours", in_window.filter(started_at__isnull=False).count, slots)
    finally:
        beatkit.stop_group(beat)
        beatkit.stop_group(worker)
    rows = list(in_window.values_list("job_id", "scheduled_for", "started_at"))
    lags = [(started - due).total_seconds() for _, due, started in rows if started]
    unique = {(job, due) for job, due, _ in rows}
    return {"lags": lags, "runs": len(unique), "doubled": len(rows) - len(unique),
            "slots": slots, "unstarted": sum(1 for *_, s in rows if s is None)}  # fmt: skip


def baseline(seconds: float, tmp: Path, redis_url: str) -> dict[str, Any]:
    from redbeat.schedulers import RedBeatSchedulerEntry

    database = tmp / "bare.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE bare_runs (due REAL, started REAL)")
    broker = redis_url.replace("/0", "/1")
    bare.conf.update(broker_url=broker, redbeat_redis_url=broker)
    base = time.time() + 10
    anchors = []
    for i in range(JOBS):
        anchor = base + i * EVERY / JOBS
        entry = RedBeatSchedulerEntry(f"e{i}", "bare.run_true", bare_schedule(), app=bare)
        entry.last_run_at = datetime.fromtimestamp(anchor, UTC)
        entry.save()
        anchors.append(anchor)
    # Without DJANGO_SETTINGS_MODULE: Celery would set Django up in the bare processes too.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(BARE_BROKER=broker, BARE_DATABASE=str(database),
               PYTHONPATH=str(ROOT / "benchmarks"))  # fmt: skip
    log = tmp / "bare.log"
    worker = celery("bench_e2e_lag:bare", [*WORKER, "-n", "bare@%h"], log, env)
    beat = celery("bench_e2e_lag:bare", ["beat", "-S", "bench_e2e_lag:Timed"], log, env)
    try:
        beatkit.progress(f"bare: {JOBS} entries every 5 s for {seconds:g} s")
        start, end = hold(seconds + 10, "bare", [worker, beat])
        window = (start + 15, end - 1)
        beatkit.stop_group(beat)
        slots = sum(grid_slots(anchor, *window) for anchor in anchors)

        def started() -> int:
            with sqlite3.connect(database, timeout=30) as db:
                query = "SELECT COUNT(*) FROM bare_runs WHERE due BETWEEN ? AND ?"
                return int(db.execute(query, window).fetchone()[0])

        drain("bare", started, slots)
    finally:
        beatkit.stop_group(beat)
        beatkit.stop_group(worker)
    with sqlite3.connect(database) as db:
        query = "SELECT due, started FROM bare_runs WHERE due BETWEEN ? AND ?"
        rows = db.execute(query, window).fetchall()
    return {"lags": [started - due for due, started in rows], "runs": len(set(rows)),
            "doubled": len(rows) - len({due for due, _ in rows}), "slots": slots,
            "unstarted": 0}  # fmt: skip


def bare_schedule() -> Any:
    from celery.schedules import schedule

    return schedule(run_every=EVERY)


def describe(result: dict[str, Any]) -> str:
    lags = result["lags"]
    text = (f"p50 {beatkit.seconds(beatkit.percentile(lags, 0.5))}, p99 "
            f"{beatkit.seconds(beatkit.percentile(lags, 0.99))}, runs {result['runs']} of "
            f"{result['slots']} slots")  # fmt: skip
    return text + (f", {result['doubled']} doubled" if result["doubled"] else "")


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    seconds = QUICK_SECONDS if args.quick else SECONDS
    with beatkit.private_stack("e2e-lag") as server:
        tmp = Path(os.environ["VAR_DIR"])
        ours_result = ours(seconds, tmp)
        bare_result = baseline(seconds, tmp, server.url)
    print(f"(logs under {tmp})", file=sys.stderr)
    p99 = beatkit.percentile(ours_result["lags"], 0.99)
    met = p99 < GOAL_P99 and ours_result["runs"] == ours_result["slots"]
    beatkit.report(
        f"{JOBS} interval jobs every 5 s, 2 worker processes, {seconds} s: start lag, "
        "runs = slots", "p99 under 250 ms, runs = slots", describe(ours_result),
        describe(bare_result), p99 / beatkit.percentile(bare_result["lags"], 0.99),
        met and not ours_result["doubled"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
