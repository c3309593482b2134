"""Many jobs due at one boundary: 2,000 of 10,000 schedules, and 20,000 of 100,000.

Ours: ``JobScheduler`` ticking in this process as ``celery beat`` drives it (sleep for
what ``tick()`` returns); the due jobs share a seconds cron that fires at the boundary.
Baseline, on the same Redis: bare RedBeat's ``RedBeatScheduler`` with plain entries
(a one-day interval last run one day before the boundary). Both with a 10 s lock, no
worker: the figure is the time from the boundary until every due message is in the
broker, and whether the lock was lost (bare RedBeat's next tick would then crash).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import beatkit

CASES = [(10_000, 2_000, 2.0), (100_000, 20_000, 10.0)]  # schedules, due, goal (s)
QUICK_CASES = [(10_000, 2_000, 2.0), (20_000, 4_000, 2.0 * 4_000 / 2_000)]
LOCK_TIMEOUT = 10
NEVER_NOW = {"type": "cron", "expression": "0 0 1 1 *"}


def bare_app(redis_url: str) -> Any:
    from celery import Celery

    app = Celery("bare", broker=redis_url)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_redis_options={},
                    redbeat_key_prefix="bare:", beat_max_loop_interval=1,
                    redbeat_lock_timeout=LOCK_TIMEOUT, beat_schedule={})  # fmt: skip
    return app


def write_bare_entries(app: Any, count: int, due: int, boundary: datetime) -> None:
    """Plain entries in RedBeat's format (setup, in pipelines): ``due`` of them a one-day
    interval last run a day before ``boundary``, the rest a yearly crontab."""
    from celery.schedules import crontab, schedule
    from redbeat.decoder import RedBeatJSONEncoder, to_timestamp
    from redbeat.schedulers import RedBeatSchedulerEntry, get_redis

    client = get_redis(app)
    client.delete(app.redbeat_conf.schedule_key)
    yearly = crontab(minute="0", hour="0", day_of_month="1", month_of_year="1")
    daily = schedule(run_every=timedelta(days=1))
    for offset in range(0, count, 5000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(offset, min(offset + 5000, count)):
                plan = daily if i < due else yearly
                entry = RedBeatSchedulerEntry(f"e{i}", "bare.noop", plan, app=app)
                entry.last_run_at = boundary - timedelta(days=1) if i < due else None
                definition = beatkit.bare_definition(entry, plan)
                meta = {"last_run_at": entry.last_run_at}
                pipe.hset(entry.key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
                pipe.hset(entry.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
                score = to_timestamp(boundary) if i < due else to_timestamp(entry.due_at)
                pipe.zadd(app.redbeat_conf.schedule_key, {entry.key: score})
            pipe.execute()


def run_beat(scheduler: Any, client: Any, queue: str, due: int, boundary: datetime) -> dict:
    """Tick as celery beat does until ``due`` messages wait in ``queue``; the seconds from
    the boundary to the last, and whether the lock was lost on the way."""
    from redis.exceptions import LockNotOwnedError

    lost, crashed = False, False
    losses = []
    take_back = getattr(scheduler, "_take_lock_back", None)
    if take_back is not None:  # ours takes a lost lock back inside its tick: count those

        def counted() -> None:
            losses.append(time.time())
            take_back()

        scheduler._take_lock_back = counted
    rebuilt_at = None
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            wait = scheduler.tick()
        except LockNotOwnedError:
            crashed = lost = True  # celery beat would exit here
            break
        lost = lost or bool(losses) or not scheduler.lock.owned()
        if rebuilt_at is None and getattr(scheduler, "_rebuild", None) is None:
            rebuilt_at = time.time()
        if beatkit.queued(client, queue) >= due:
            break
        time.sleep(wait or 0)
    finished = time.time()
    return {"seconds": finished - boundary.timestamp(), "lost": lost, "crashed": crashed,
            "sent": beatkit.queued(client, queue),
            "rebuilt_after": (rebuilt_at or finished) - boundary.timestamp()}  # fmt: skip


def case(server: Any, count: int, due: int, made: int) -> tuple[dict, dict]:
    import redis
    from redbeat.schedulers import RedBeatScheduler

    from config.celery import app
    from scheduler_app import redbeat
    from scheduler_app.models import Job

    client = redis.Redis.from_url(server.url)
    beatkit.make_jobs(count - made, lambda i: NEVER_NOW)
    ids = list(Job.objects.order_by("id").values_list("id", flat=True)[:due])
    # Beat starts with the jobs in the database: its rebuild (in its ticks) writes them.
    boundary = beatkit.next_whole_second(3 + count / 5000)
    Job.objects.filter(id__in=ids).update(schedule=beatkit.at_second(boundary), queue="burst")
    client.delete(*beatkit.queue_lists("burst"))
    beatkit.progress(f"ours: beat starts; {due:,} of {count:,} due at {boundary:%H:%M:%S}")
    ours = beatkit.with_lock(redbeat.JobScheduler(app=app))
    ours_result = run_beat(ours, client, "burst", due, boundary)
    if ours_result["rebuilt_after"] > 0:
        beatkit.progress("warning: the rebuild ended after the boundary")
    ours.close()
    Job.objects.filter(id__in=ids).update(schedule=NEVER_NOW, queue="default")
    drop(client, "redbeat:*")

    bare = bare_app(server.url)
    boundary = beatkit.next_whole_second(2 + count / 20000)
    write_bare_entries(bare, count, due, boundary)
    beatkit.progress(f"bare RedBeat: {due:,} of {count:,} due at {boundary:%H:%M:%S}")
    baseline = beatkit.with_lock(RedBeatScheduler(app=bare))
    client.delete(*beatkit.queue_lists("bare"))
    bare_result = run_beat(baseline, client, "bare", due, boundary)
    baseline.lock = None  # it may be lost; nothing to release
    baseline.close()
    drop(client, "bare*")
    return ours_result, bare_result


def drop(client: Any, pattern: str) -> None:
    """Delete the keys matching ``pattern``, a thousand to a command."""
    keys = list(client.scan_iter(pattern, count=10_000))
    for offset in range(0, len(keys), 1000):
        client.delete(*keys[offset : offset + 1000])


def describe(result: dict) -> str:
    text = f"{result['seconds']:.2f} s"
    if result["crashed"]:
        return text + f", lock lost: beat crashes ({result['sent']:,} sent)"
    return text + (", lock lost" if result["lost"] else ", lock kept")


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    cases = QUICK_CASES if args.quick else CASES
    results = []
    with beatkit.private_stack("beat-burst") as server:
        made = 0
        for count, due, goal in cases:
            ours, bare = case(server, count, due, made)
            made = count
            results.append((count, due, goal, ours, bare))
    for count, due, goal, ours, bare in results:
        met = ours["seconds"] <= goal and not ours["lost"] and ours["sent"] == due
        beatkit.report(f"{count:,} schedules, {due:,} due at one boundary: all sent",
                       f"within {goal:g} s, lock never lost", describe(ours), describe(bare),
                       ours["seconds"] / bare["seconds"], met)  # fmt: skip


if __name__ == "__main__":
    main()
