"""GET latency of the API's lists and figures with 1,000 jobs and 1,000,000 runs on PostgreSQL.

A private database on 127.0.0.1:5432 (made and dropped here) and a private Redis (the
throttles' cache, RedBeat). The jobs are made through the models, as the API would;
the runs go in by COPY, as a bulk load would: with the run-total triggers off, then
the totals made in one statement (the tests cover the triggers; a load through them
goes at a third of the speed). Each endpoint is then called through Django's test
client, which runs the whole stack (middleware, token auth, throttles, serializers)
but no socket, the endpoints in turn, round after round; its p50 and p95 are
reported with its queries and the processor time of a call in this process.

Baseline, in the same run on the same stack: the same endpoints before any run exists
(one job, no runs), so the ratio is what a million runs (and a page of 50 rows to
serialize, where the empty list has none) adds. Goal: p95 under 50 ms.

    .venv/bin/python benchmarks/bench_api.py            # 1,000,000 runs (a few minutes)
    .venv/bin/python benchmarks/bench_api.py --quick    # 100,000 runs

BENCH_RESULTS=file appends one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scheduler_app.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
GOAL_MS = 50.0
JOBS = 1000
COPY_BATCH = 50_000
RUN_COLUMNS = ("job_id", "trigger", "attempt", "status", "scheduled_for", "queued_at",
               "started_at", "finished_at", "duration", "exit_code", "worker", "output",
               "error", "node", "due_at")  # fmt: skip
# Finished runs by status, as a busy scheduler's history might be (weights).
STATUSES = {"succeeded": 920, "failed": 50, "timed_out": 10, "skipped": 10, "cancelled": 5,
            "lost": 5}  # fmt: skip
TRIGGERS = {"schedule": 97, "manual": 2, "retry": 1}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def setup(database: str, tmp: Path) -> EmbeddedRedis:
    """Settings for a private database and Redis, then Django and the migrations."""
    admin(f'CREATE DATABASE "{database}"')
    redis_server = EmbeddedRedis.start(tmp / "redis", free_port(), persist=False)
    os.environ.update(
        DATABASE_URL=f"{SERVER}/{database}", REDIS_URL=redis_server.url, VAR_DIR=str(tmp),
        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(40), ALLOWED_HOSTS="localhost",
        SECURE_SSL_REDIRECT="0", API_USER_RATE="100000000/minute",
        DJANGO_SETTINGS_MODULE="config.settings",
    )  # fmt: skip
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return redis_server


def make_jobs(owner: Any, first: int, n: int) -> list[Any]:
    """Jobs on cron schedules, three in four depending on the one before."""
    from scheduler_app.models import Job, JobDependency

    jobs = [
        Job.objects.create(owner=owner, name=f"job-{i:04d}", payload={"command": "true"},
                           schedule={"type": "cron", "expression": f"{i % 60} * * * *"})
        for i in range(first, first + n)
    ]  # fmt: skip
    JobDependency.objects.bulk_create(
        JobDependency(job=job, upstream_id=job.id - 1) for job in jobs if job.id % 4 and first
    )
    return jobs


def run_rows(job_ids: list[int], total: int, now: datetime) -> Any:
    """``total`` runs over the jobs, one every few seconds back from now; the newest few
    still queued or running."""
    rng = random.Random(12)
    statuses = rng.choices(list(STATUSES), list(STATUSES.values()), k=total)
    triggers = rng.choices(list(TRIGGERS), list(TRIGGERS.values()), k=total)
    for k in range(total):
        queued = now - timedelta(seconds=3 * (total - k))
        status = statuses[k] if k < total - 20 else ("queued", "running")[k % 2]
        started = queued + timedelta(seconds=0.2) if status not in ("queued", "skipped") else None
        timed = started is not None and status != "running"
        duration = round(rng.uniform(0.05, 30.0), 3) if timed else None
        finished = started + timedelta(seconds=duration) if timed else None
        if status in ("skipped", "cancelled") and finished is None:
            finished = queued
        yield (job_ids[k % len(job_ids)], triggers[k], 1, status, queued, queued, started,
               finished, duration, 0 if status == "succeeded" else None, f"node-{k % 4}",
               "done\n" if timed else "", "", "", queued)  # fmt: skip


# What the triggers would have summed, for the runs loaded without them.
TOTALS_SQL = """
INSERT INTO scheduler_app_runtotal (job_id, status, count, duration_sum, duration_count,
                                    duration_max)
SELECT job_id, status, COUNT(*), COALESCE(SUM(duration), 0), COUNT(duration), MAX(duration)
FROM scheduler_app_run
WHERE status NOT IN ('queued', 'waiting', 'running')
GROUP BY job_id, status
"""


def fill_runs(job_ids: list[int], total: int) -> float:
    """COPY the runs in batches (each its own transaction); the seconds it took."""
    from django.db import connection
    from django.utils import timezone

    connection.ensure_connection()
    raw = connection.connection
    rows = run_rows(job_ids, total, timezone.now())
    started = time.perf_counter()
    copy_sql = f"COPY scheduler_app_run ({', '.join(RUN_COLUMNS)}) FROM STDIN"
    done = 0
    raw.execute("ALTER TABLE scheduler_app_run DISABLE TRIGGER USER")
    while done < total:
        size = min(COPY_BATCH, total - done)
        with raw.transaction(), raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for _ in range(size):
                copy.write_row(next(rows))
        done += size
        elapsed = time.perf_counter() - started
        progress(f"  runs: {done:,} / {total:,} ({done / elapsed:,.0f} rows/s)")
    raw.execute("ALTER TABLE scheduler_app_run ENABLE TRIGGER USER")
    raw.execute(TOTALS_SQL)
    raw.commit()
    with raw.cursor() as cursor:
        raw.autocommit = True
        for table in ("scheduler_app_run", "scheduler_app_runtotal", "scheduler_app_job"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


def endpoints(job_id: int, client: Any) -> dict[str, str]:
    first = client.get("/api/v1/runs/?page_size=50").json()
    return {
        "GET /runs/": "/api/v1/runs/?page_size=50",
        "GET /runs/ (next page)": first["next"] or "/api/v1/runs/?page_size=50",
        "GET /runs/?status=failed": "/api/v1/runs/?page_size=50&status=failed",
        "GET /runs/?job=": f"/api/v1/runs/?page_size=50&job={job_id}",
        "GET /jobs/": "/api/v1/jobs/?page_size=50",
        "GET /jobs/{id}/runs/": f"/api/v1/jobs/{job_id}/runs/?page_size=50",
        "GET /stats/": "/api/v1/stats/",
        "GET /next-runs/": "/api/v1/next-runs/",
        "GET /jobs/{id}/next-runs/": f"/api/v1/jobs/{job_id}/next-runs/",
        "GET /dashboard/": "/api/v1/dashboard/",
        "GET /dashboard/?window=7d": "/api/v1/dashboard/?window=7d",
    }


class QueryCounter:
    """An execute wrapper that counts the statements (across reconnections)."""

    count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def measure(client: Any, urls: dict[str, str], samples: int) -> dict[str, dict[str, float]]:
    """p50 and p95 (ms) and the queries of one call, per endpoint. The endpoints are
    called in turn, round after round, so that a busy moment of the machine falls on
    all of them alike."""
    from django.db import connection

    counts = {}
    for name, url in urls.items():
        for _ in range(5):  # warm: caches, connection, code paths
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content)
        counts[name] = QueryCounter()
        with connection.execute_wrapper(counts[name]):
            client.get(url)
    times: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, list[float]] = {name: [] for name in urls}
    for round_ in range(samples):
        for name, url in urls.items():
            started, used = time.perf_counter(), time.process_time()
            client.get(url)
            times[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - used) * 1000)
        if (round_ + 1) % 50 == 0:
            progress(f"  {round_ + 1} / {samples} rounds")
    figures = {}
    for name, taken in times.items():
        cuts = statistics.quantiles(taken, n=20)
        figures[name] = {
            "p50": statistics.median(taken), "p95": cuts[18],
            "cpu": statistics.median(cpu[name]), "queries": counts[name].count,
        }  # fmt: skip
        progress(f"  {name}: p50 {figures[name]['p50']:.1f} ms, p95 {cuts[18]:.1f} ms")
    return figures


def report(ours: dict, baseline: dict, runs: int) -> None:
    print(f"\nAPI with {JOBS:,} jobs and {runs:,} runs on PostgreSQL "
          f"(Django test client, whole stack; goal p95 < {GOAL_MS:.0f} ms)")  # fmt: skip
    print("(cpu: the median processor time of a call in this process, the database's not "
          "counted: what a busy machine multiplies)")  # fmt: skip
    print(f"{'endpoint':28} {'queries':>7} {'cpu ms':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'empty cpu':>9} {'empty p50':>10} {'empty p95':>10} {'ratio':>6}  met")  # fmt: skip
    results = os.environ.get("BENCH_RESULTS")
    for name, figure in ours.items():
        base = baseline[name]
        ratio = figure["p95"] / base["p95"]
        met = figure["p95"] < GOAL_MS
        print(f"{name:28} {figure['queries']:7d} {figure['cpu']:7.1f} {figure['p50']:8.1f} "
              f"{figure['p95']:8.1f} {base['cpu']:9.1f} {base['p50']:10.1f} "
              f"{base['p95']:10.1f} {ratio:5.1f}x  {'yes' if met else 'NO'}")  # fmt: skip
        if results:
            line = {
                "figure": f"API {name} p95, {runs:,} runs",
                "goal": f"p95 < {GOAL_MS:.0f} ms",
                "ours": f"{figure['p95']:.1f} ms (p50 {figure['p50']:.1f}, cpu "
                f"{figure['cpu']:.1f}, {figure['queries']} queries)",
                "baseline": f"{base['p95']:.1f} ms (p50 {base['p50']:.1f}, cpu "
                f"{base['cpu']:.1f}; the same endpoint with no runs)",
                "ratio": f"{ratio:.2f}",
                "met": met,
            }
            with open(results, "a") as out:
                out.write(json.dumps(line) + "\n")


def run(runs: int, samples: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    owner = get_user_model().objects.create_user("bench")
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    progress(f"database {settings.DATABASES['default']['NAME']}, "
             f"CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}")  # fmt: skip
    [probe] = make_jobs(owner, 0, 1)
    progress("baseline: the endpoints with one job and no runs")
    baseline = measure(client, endpoints(probe.id, client), samples)
    progress(f"filling: {JOBS - 1:,} more jobs")
    jobs = [probe, *make_jobs(owner, 1, JOBS - 1)]
    progress(f"filling: {runs:,} runs by COPY")
    seconds = fill_runs([job.id for job in jobs], runs)
    progress(f"  filled in {seconds:.0f} s ({runs / seconds:,.0f} runs/s, with VACUUM ANALYZE)")
    middle = jobs[len(jobs) // 2]
    progress(f"ours: the endpoints with {runs:,} runs")
    ours = measure(client, endpoints(middle.id, client), samples)
    report(ours, baseline, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 runs, fewer samples")
    args = parser.parse_args()
    runs, samples = (100_000, 60) if args.quick else (1_000_000, 200)
    database = f"bench_api_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    redis_server = None
    try:
        redis_server = setup(database, tmp)
        run(runs, samples)
    finally:
        from django.db import connections

        connections.close_all()
        if redis_server is not None:
            redis_server.stop()
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
