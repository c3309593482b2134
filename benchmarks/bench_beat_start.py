"""Beat start: rebuilding the RedBeat schedule from 100,000 jobs (the reconcile).

Ours: ``scheduler_app.redbeat.reconcile()`` on 100,000 jobs in the database (cron
schedules of 60 kinds), into an empty Redis. Baseline, on the same Redis: bare RedBeat
storing 100,000 plain crontab entries the way its ``update_from_dict`` does, one
``RedBeatSchedulerEntry.save()`` each. Goal: under 10 s (at least 20,000 jobs/s).
"""

from __future__ import annotations

import time

import beatkit


def bare_redbeat_saves(redis_url: str, count: int) -> float:
    """Bare RedBeat: ``count`` plain crontab entries saved one by one; seconds taken."""
    from celery import Celery
    from celery.schedules import crontab
    from redbeat.schedulers import RedBeatSchedulerEntry

    bare = Celery("bare", broker=redis_url)
    bare.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix="bare:")
    started = time.perf_counter()
    for i in range(count):
        RedBeatSchedulerEntry(f"e{i}", "bare.noop", crontab(minute=str(i % 60)), app=bare).save()
        if i % 20000 == 19999:
            beatkit.progress(f"bare RedBeat: {i + 1}/{count} entries saved")
    return time.perf_counter() - started


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    count = 20_000 if args.quick else 100_000
    with beatkit.private_stack("beat-start") as server:
        from scheduler_app import redbeat

        beatkit.make_jobs(count, lambda i: {"type": "cron", "expression": f"{i % 60} * * * *"})
        beatkit.progress(f"ours: reconcile of {count} jobs")
        started = time.perf_counter()
        saved, _ = redbeat.reconcile()
        ours = time.perf_counter() - started
        assert saved == count, saved
        beatkit.progress(f"bare RedBeat: {count} entry saves")
        baseline = bare_redbeat_saves(server.url, count)
    goal = 10.0 * count / 100_000
    beatkit.report(
        f"beat start with {count:,} jobs (reconcile)", f"under {goal:g} s",
        f"{ours:.2f} s ({count / ours:,.0f} jobs/s)",
        f"{baseline:.2f} s ({count / baseline:,.0f} entries/s, bare RedBeat saves)",
        ours / baseline, ours < goal,
    )  # fmt: skip


if __name__ == "__main__":
    main()
