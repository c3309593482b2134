"""GET /metrics with 1,000 jobs and 1,000,000 runs on PostgreSQL: what a Prometheus scrape
costs at scale.

The database is filled as benchmarks/bench_api.py fills it (its helpers: the jobs through
the models, the runs by COPY with the triggers off, then RunTotal in one statement);
RunHistogram is then filled by the statement migration 0018 fills it with. The scrape
goes through Django's test client from loopback (the whole stack but the socket), with
a private Redis answering the queue depths, workers and beat's tick.

Baseline, in the same run on the same stack: the same scrape before any run exists (no
jobs, no runs), so the ratio is what a million runs add. Goal: p95 under 100 ms.

    .venv/bin/python benchmarks/bench_metrics.py            # 1,000,000 runs (a few minutes)
    .venv/bin/python benchmarks/bench_metrics.py --quick    # 100,000 runs

--database NAME uses that name for the private database (made here, dropped at the end).
BENCH_RESULTS=file appends one JSON line per figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import JOBS, admin, fill_runs, make_jobs, measure, progress, setup

GOAL_MS = 100.0
URL = {"GET /metrics": "/metrics"}


def fill_histograms() -> None:
    """What the histogram triggers would have counted, for the runs loaded without them."""
    from django.db import connection

    migration = importlib.import_module("scheduler_app.migrations.0018_metrics_run_histograms")
    with connection.cursor() as cursor:
        cursor.execute(migration.fill_sql(connection.vendor))
        cursor.execute("ANALYZE scheduler_app_runhistogram")


def runs_counted(client: Any) -> float:
    """The runs the scrape counts as finished: a check that it read the million."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return sum(sample.value for sample in families["cronfleet_runs"].samples)


def report(ours: dict, baseline: dict, runs: int, counted: float) -> None:
    ratio = ours["p95"] / baseline["p95"]
    met = ours["p95"] < GOAL_MS
    print(f"\nGET /metrics with {JOBS:,} jobs and {runs:,} runs on PostgreSQL "
          f"(Django test client, whole stack; goal p95 < {GOAL_MS:.0f} ms)")  # fmt: skip
    print(f"finished runs the scrape counts: {counted:,.0f}")
    print(f"{'':10} {'queries':>7} {'cpu ms':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for name, figure in (("ours", ours), ("baseline", baseline)):
        print(f"{name:10} {figure['queries']:7d} {figure['cpu']:7.1f} {figure['p50']:8.1f} "
              f"{figure['p95']:8.1f}")  # fmt: skip
    print(f"ratio (p95, ours / baseline): {ratio:.2f}x   goal met: {'yes' if met else 'NO'}")
    if results := os.environ.get("BENCH_RESULTS"):
        line = {
            "figure": f"GET /metrics p95, {runs:,} runs",
            "goal": f"p95 < {GOAL_MS:.0f} ms",
            "ours": f"{ours['p95']:.1f} ms (p50 {ours['p50']:.1f}, cpu {ours['cpu']:.1f}, "
            f"{ours['queries']} queries)",
            "baseline": f"{baseline['p95']:.1f} ms (p50 {baseline['p50']:.1f}; the same "
            "scrape with no jobs and no runs)",
            "ratio": f"{ratio:.2f}",
            "met": met,
        }
        with open(results, "a") as out:
            out.write(json.dumps(line) + "\n")


def run(runs: int, samples: int) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client(HTTP_HOST="localhost")  # REMOTE_ADDR 127.0.0.1: no token needed
    progress("baseline: the scrape with no jobs and no runs")
    baseline = measure(client, URL, samples)[next(iter(URL))]
    owner = get_user_model().objects.create_user("bench")
    progress(f"filling: {JOBS:,} jobs")
    jobs = make_jobs(owner, 0, JOBS)
    progress(f"filling: {runs:,} runs by COPY")
    seconds = fill_runs([job.id for job in jobs], runs)
    progress(f"  filled in {seconds:.0f} s; the histograms' buckets in one statement")
    fill_histograms()
    progress(f"ours: the scrape with {runs:,} runs")
    ours = measure(client, URL, samples)[next(iter(URL))]
    report(ours, baseline, runs, runs_counted(client))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 runs, fewer samples")
    parser.add_argument("--database", default=f"bench_metrics_{os.getpid()}",
                        help="the private database's name (made and dropped here)")  # fmt: skip
    args = parser.parse_args()
    runs, samples = (100_000, 60) if args.quick else (1_000_000, 200)
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    redis_server = None
    try:
        redis_server = setup(args.database, tmp)
        run(runs, samples)
    finally:
        from django.db import connections

        connections.close_all()
        if redis_server is not None:
            redis_server.stop()
        admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
