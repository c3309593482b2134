"""End to end: N runs of ``true`` on 2 worker processes, ours against a bare Celery task.

Ours: a command job (``true``, policy ``allow``) and N runs asked for by hand, each sent
as ``workers.execute_run`` when its row is committed; a real ``celery -A config worker
-c 2`` runs them (claim, child process, live output, end, the job's figures).

The baseline, written here (never imported from our code): a bare Celery app whose
task runs ``true`` in a subprocess and writes one status row to the same database,
Celery's defaults otherwise, on 2 worker processes too; and the same with our
delivery settings (late acknowledgement, prefetch 1), to show what they cost.

Both are sent in full before their worker starts, on one private Redis, and timed from
the first run's start to the last run's end as the database recorded them. On SQLite
(a file) and on PostgreSQL (a private database on 127.0.0.1:5432, created and dropped
here; skipped when no server answers). Ours is measured with the default settings
(connections kept, DB_CONN_MAX_AGE=60) and with a connection per run (0).

    .venv/bin/python benchmarks/bench_worker.py [--quick] [--runs N] [--databases sqlite,postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import beatkit
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
GOAL = 0.5  # of the bare throughput
WORKER_ARGS = ["-c", "2", "-l", "warning", "--without-mingle", "--without-gossip"]

# --- the baseline: a bare Celery task, loaded by its worker as bench_worker:bare ----------

bare = Celery("bare", broker=os.environ.get("BARE_BROKER", "memory://"))
if os.environ.get("BARE_LATE"):  # our delivery guarantee: no message lost or held waiting
    bare.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
_bare_db: Any = None


def _bare_connection() -> Any:
    """One connection per worker process, opened at its first task."""
    global _bare_db
    if _bare_db is None:
        url = os.environ["BARE_DATABASE"]
        if url.startswith("postgres"):
            import psycopg

            _bare_db = psycopg.connect(url, autocommit=True)
        else:
            _bare_db = sqlite3.connect(url, timeout=30, isolation_level=None)
    return _bare_db


@bare.task(name="bare.run_true")
def run_true(number: int) -> None:
    started = time.time()
    code = subprocess.run(["/bin/sh", "-c", "true"], check=False).returncode
    status = "succeeded" if code == 0 else "failed"
    marks = "%s" if os.environ["BARE_DATABASE"].startswith("postgres") else "?"
    _bare_connection().execute(
        f"INSERT INTO bench_bare (id, status, started, finished) VALUES ({marks}, {marks}, "
        f"{marks}, {marks})",
        (number, status, started, time.time()),
    )


# --- the driver ---------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)


def start_worker(
    app: str, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", *args, *WORKER_ARGS],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU time of the worker and its pool processes so far (their own children, the
    ``true`` processes, included once waited for)."""
    import psutil

    total = 0.0
    for member in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def wait_done(
    label: str, total: int, done: Callable[[], int], proc: subprocess.Popen[bytes]
) -> float:
    """Until ``done()`` reaches ``total``, showing progress; fails if the worker dies or
    nothing moves for a minute. Returns the worker's CPU milliseconds per run, from its
    first run on (its start left out)."""
    last, moved, first = -1, time.monotonic(), None
    while (count := done()) < total:
        if proc.poll() is not None:
            raise RuntimeError(f"{label}: the worker exited with {proc.returncode}")
        if count != last:
            last, moved = count, time.monotonic()
            if first is None and count:
                first = (count, cpu_seconds(proc))
        elif time.monotonic() - moved > 60:
            raise RuntimeError(f"{label}: stuck at {count}/{total}")
        progress(f"{label}: {count}/{total}")
        time.sleep(0.5)
    progress(f"{label}: {total}/{total}")
    print(file=sys.stderr)
    start_count, start_cpu = first or (0, 0.0)
    return (cpu_seconds(proc) - start_cpu) * 1000 / max(total - start_count, 1)


def measure_ours(env: dict[str, str], runs: int, label: str, log: Path) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Max, Min

    from scheduler_app import services
    from scheduler_app.models import Job, Run

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    job = Job.objects.create(owner=owner, name=f"true-{label}", payload={"command": "true"},
                             schedule={"type": "manual"},
                             concurrency_policy=Job.ConcurrencyPolicy.ALLOW)  # fmt: skip
    for number in range(runs):
        services.create_manual_run(job)
        if number % 100 == 0:
            progress(f"{label}: sending {number}/{runs}")
    connection.close()
    worker = start_worker("config", ["-n", f"ours-{label}@%h", "-Q", "default"], env, log)
    try:
        finished = Run.objects.filter(job=job, finished_at__isnull=False)
        cpu_ms = wait_done(label, runs, finished.count, worker)
    finally:
        beatkit.stop_group(worker)
    span = Run.objects.filter(job=job).aggregate(first=Min("started_at"), last=Max("finished_at"))
    failed = Run.objects.filter(job=job).exclude(status=Run.Status.SUCCEEDED).count()
    if failed:
        raise RuntimeError(f"{label}: {failed} runs did not succeed")
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"runs": runs, "seconds": seconds, "per_second": runs / seconds, "cpu_ms": cpu_ms}


def measure_bare(env: dict[str, str], runs: int, label: str, log: Path) -> dict[str, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_bare")
        cursor.execute(
            "CREATE TABLE bench_bare (id INTEGER PRIMARY KEY, status VARCHAR(20), "
            "started DOUBLE PRECISION, finished DOUBLE PRECISION)"
        )
    bare.conf.broker_url = env["BARE_BROKER"]
    with bare.connection_for_write() as conn:
        for number in range(runs):
            run_true.apply_async((number,), connection=conn)
    connection.close()

    def done() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM bench_bare")
            return int(cursor.fetchone()[0])

    # Without DJANGO_SETTINGS_MODULE: Celery would set Django up in the bare worker too.
    bare_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    bare_env["PYTHONPATH"] = str(ROOT / "benchmarks")
    worker = start_worker("bench_worker:bare", ["-n", f"bare-{label}@%h"], bare_env, log)
    try:
        cpu_ms = wait_done(label, runs, done, worker)
    finally:
        beatkit.stop_group(worker)
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(started), MAX(finished), COUNT(*) FROM bench_bare "
                       "WHERE status = 'succeeded'")  # fmt: skip
        first, last, succeeded = cursor.fetchone()
    if succeeded != runs:
        raise RuntimeError(f"{label}: {runs - succeeded} runs did not succeed")
    return {"runs": runs, "seconds": last - first, "per_second": runs / (last - first),
            "cpu_ms": cpu_ms}  # fmt: skip


def one_database(database: str, runs: int, redis_url: str, tmp: Path) -> dict[str, Any]:
    """Runs in a process of its own (Django is set up once per process, for one database)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    env = {**os.environ, "BARE_BROKER": redis_url.replace("/0", "/1")}
    log = tmp / f"workers-{database}.log"
    figures = {"bare": measure_bare(env, runs, f"bare/{database}", log)}
    late = {**env, "BARE_LATE": "1"}
    figures["bare_late"] = measure_bare(late, runs, f"bare/{database} late ack", log)
    closing = {**env, "DB_CONN_MAX_AGE": "0"}
    figures["ours"] = measure_ours(closing, runs, f"ours/{database} DB_CONN_MAX_AGE=0", log)
    figures["ours_persistent"] = measure_ours(env, runs, f"ours/{database}", log)
    return figures


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
        return True
    except Exception:
        return False


def run_database(database: str, runs: int, redis_url: str, tmp: Path) -> dict[str, Any] | None:
    """Measure one database in a child process; its figures, or None when skipped."""
    env = {**os.environ, "REDIS_URL": redis_url, "VAR_DIR": str(tmp), "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SETTINGS_MODULE": "config.settings",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("DB_CONN_MAX_AGE", None)
    name = f"bench_worker_{os.getpid()}"
    if database == "postgres":
        if not postgres_answers():
            print(f"PostgreSQL does not answer at {PG_SERVER}: skipped", file=sys.stderr)
            return None
        _admin(f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = env["BARE_DATABASE"] = f"{PG_SERVER}/{name}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        env["BARE_DATABASE"] = str(tmp / "bench.sqlite3")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--one", database, "--runs", str(runs), "--redis", redis_url,
             "--tmp", str(tmp)],
            env=env, check=True, stdout=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        return json.loads(out.stdout.decode().strip().splitlines()[-1])
    finally:
        if database == "postgres":
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def report(results: dict[str, dict[str, Any]]) -> None:
    print("\nEnd to end: runs of `true` on 2 worker processes, runs/s from the first run's start")
    print("to the last one's end (the workers' CPU per run, from their first run on, in brackets).")
    print("bare: Celery's defaults; bare, late ack: acks_late and prefetch 1, as ours.")
    columns = [("bare", "bare"), ("bare_late", "bare, late ack"),
               ("ours", "ours, DB_CONN_MAX_AGE=0"), ("ours_persistent", "ours")]  # fmt: skip
    print(f"{'database':<10}" + "".join(f"{title:>26}" for _, title in columns) + "  ratios")
    for database, figures in results.items():
        cells = [f"{figures[key]['per_second']:.1f} ({figures[key]['cpu_ms']:.1f} ms)"
                 for key, _ in columns]  # fmt: skip
        bare_rate = figures["bare"]["per_second"]
        ratios = [figures[key]["per_second"] / bare_rate for key in ("ours_persistent", "ours")]
        print(f"{database:<10}" + "".join(f"{cell:>26}" for cell in cells)
              + "  " + " / ".join(f"{ratio:.2f}" for ratio in ratios))  # fmt: skip
        _record(database, figures)


def _record(database: str, figures: dict[str, Any]) -> None:
    target = os.environ.get("BENCH_RESULTS")
    if not target:
        return
    bare_rate = figures["bare"]["per_second"]
    with open(target, "a") as out:
        for key, how in (("ours_persistent", "default settings"), ("ours", "DB_CONN_MAX_AGE=0")):
            ours = figures[key]["per_second"]
            line = {
                "figure": f"end to end: {figures[key]['runs']} runs of true, 2 worker processes, "
                f"{database} ({how})",
                "goal": f"at least {GOAL:.0%} of a bare Celery task's throughput",
                "ours": f"{ours:.1f} runs/s",
                "baseline": f"{bare_rate:.1f} runs/s (acks_late and prefetch 1 as ours: "
                f"{figures['bare_late']['per_second']:.1f})",
                "ratio": f"{ours / bare_rate:.2f}",
                "met": ours / bare_rate >= GOAL,
            }
            out.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 runs instead of 2,000")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = args.runs or (300 if args.quick else 2000)
    sys.path.insert(0, str(ROOT))
    if args.one:
        print(json.dumps(one_database(args.one, runs, args.redis, Path(args.tmp))))
        return
    from scheduler_app.embedded_redis import EmbeddedRedis, free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    server = EmbeddedRedis.start(tmp / "redis", free_port(), persist=False)
    results = {}
    try:
        for database in args.databases.split(","):
            (tmp / database).mkdir()
            if figures := run_database(database, runs, server.url, tmp / database):
                results[database] = figures
    finally:
        server.stop()
    print(f"(worker logs under {tmp})", file=sys.stderr)
    report(results)


if __name__ == "__main__":
    main()
