"""Beat's idle tick (nothing due) at 1,000, 10,000 and 100,000 schedules.

Ours: ``JobScheduler.tick()`` over N job entries none of which is due. Baseline, on the
same Redis, alternating with ours: bare RedBeat's ``RedBeatScheduler.tick()`` over N
plain crontab entries (written straight into its sorted set, in its own format). Both
tick with a 1 s max interval. Goal: flat in N, within 2x of bare RedBeat.
"""

from __future__ import annotations

import json
import time
from typing import Any

import beatkit

SIZES = [1_000, 10_000, 100_000]
QUICK_SIZES = [1_000, 10_000, 20_000]
TICKS = 200
NEVER_NOW = {"type": "cron", "expression": "0 0 1 1 *"}  # 1 January: not due during the run


def bare_app(redis_url: str) -> Any:
    from celery import Celery

    app = Celery("bare", broker=redis_url)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_redis_options={},
                    redbeat_key_prefix="bare:", beat_max_loop_interval=1,
                    redbeat_lock_timeout=10, beat_schedule={})  # fmt: skip
    return app


def write_bare_entries(app: Any, start: int, stop: int) -> None:
    """Plain crontab entries in RedBeat's own format, written in pipelines (setup only)."""
    from celery.schedules import crontab
    from redbeat.decoder import RedBeatJSONEncoder, to_timestamp
    from redbeat.schedulers import RedBeatSchedulerEntry, get_redis

    client = get_redis(app)
    schedule = crontab(minute="0", hour="0", day_of_month="1", month_of_year="1")
    for offset in range(start, stop, 5000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(offset, min(offset + 5000, stop)):
                entry = RedBeatSchedulerEntry(f"e{i}", "bare.noop", schedule, app=app)
                definition = beatkit.bare_definition(entry, schedule)
                pipe.hset(entry.key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
                pipe.zadd(app.redbeat_conf.schedule_key, {entry.key: to_timestamp(entry.due_at)})
            pipe.execute()


def tick_time(scheduler: Any, ticks: int) -> float:
    started = time.perf_counter()
    for _ in range(ticks):
        scheduler.tick()
    return (time.perf_counter() - started) / ticks


def measure(size: int, ours: Any, bare: Any) -> tuple[float, float]:
    """Mean tick of each, measured in alternating rounds (the machine's noise shared)."""
    ours_times, bare_times = [], []
    tick_time(ours, 20), tick_time(bare, 20)  # warm: connections, scripts, caches
    for _ in range(4):
        ours_times.append(tick_time(ours, TICKS // 4))
        bare_times.append(tick_time(bare, TICKS // 4))
    return beatkit.mean(ours_times), beatkit.mean(bare_times)


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    sizes = QUICK_SIZES if args.quick else SIZES
    results: dict[int, tuple[float, float]] = {}
    with beatkit.private_stack("beat-idle") as server:
        from redbeat.schedulers import RedBeatScheduler

        from config.celery import app
        from scheduler_app.redbeat import JobScheduler

        bare = bare_app(server.url)
        made = 0
        for size in sizes:
            beatkit.make_jobs(size - made, lambda i: NEVER_NOW)
            write_bare_entries(bare, made, size)
            made = size
            ours = beatkit.with_lock(JobScheduler(app=app))
            while ours._rebuild is not None:  # the rebuild at start, in its ticks
                ours.tick()
            baseline = beatkit.with_lock(RedBeatScheduler(app=bare))
            beatkit.progress(f"ticking at {size:,} schedules")
            results[size] = measure(size, ours, baseline)
            ours.close()
            baseline.close()
    for size, (ours_tick, bare_tick) in results.items():
        beatkit.report(f"idle tick at {size:,} schedules", "within 2x of bare RedBeat",
                       beatkit.seconds(ours_tick), beatkit.seconds(bare_tick),
                       ours_tick / bare_tick, ours_tick <= 2 * bare_tick)  # fmt: skip
    small, large = results[sizes[0]][0], results[sizes[-1]][0]
    bare_growth = results[sizes[-1]][1] / results[sizes[0]][1]
    beatkit.report(f"idle tick growth {sizes[0]:,} -> {sizes[-1]:,} schedules",
                   "flat (under 2x)", f"{large / small:.2f}x", f"{bare_growth:.2f}x (bare RedBeat)",
                   (large / small) / bare_growth, large / small < 2)  # fmt: skip


if __name__ == "__main__":
    main()
