"""Steady load: 300 interval jobs every 5 s (60 fires a second) for 2 minutes.

Ours: ``JobScheduler`` ticking in this process as ``celery beat`` drives it, the jobs'
grids spread over the 5 s. Baseline, on the same Redis: bare RedBeat's
``RedBeatScheduler`` with 300 plain 5 s interval entries spread the same way. No worker:
the figure is beat's part of a run's start lag, from each fire's due time to its
message in the broker (p50, p99), and whether every slot of the grid was sent once
(runs = slots). The workers' part of the start lag is issue 12's worker side.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import beatkit

JOBS = 300
EVERY = 5.0
SECONDS, QUICK_SECONDS = 120, 30


def with_lock(scheduler: Any) -> Any:
    from redbeat.schedulers import acquire_distributed_beat_lock

    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    return scheduler


def drive(scheduler: Any, seconds: float) -> tuple[float, float]:
    """Tick as celery beat does for ``seconds``; the window measured (start, end)."""
    started = time.time()
    while time.time() < started + seconds:
        wait = scheduler.tick()
        time.sleep(max(0.0, min(wait or 0, started + seconds - time.time())))
    return started, time.time()


def grid_slots(anchor: float, start: float, end: float) -> int:
    """Fire times ``anchor + k * EVERY`` (k >= 1) inside [start, end]."""
    first = max(1, int((start - anchor) // EVERY) + 1)
    last = int((end - anchor) // EVERY)
    return max(0, last - first + 1)


def ours(seconds: float) -> dict:
    import redis
    from django.conf import settings

    from config.celery import app
    from scheduler_app import redbeat
    from scheduler_app.models import Job

    base = datetime.now(UTC) + timedelta(seconds=2)  # every job's first fire: base + 5 s + i/60
    beatkit.make_jobs(JOBS, lambda i: {"type": "interval", "every": 5, "unit": "seconds"})
    anchors = {}
    for i, job in enumerate(Job.objects.order_by("id")):
        anchors[job.id] = base + timedelta(seconds=i * EVERY / JOBS)
        Job.objects.filter(id=job.id).update(schedule_start=anchors[job.id], queue="steady")
    scheduler = with_lock(redbeat.JobScheduler(app=app))
    beatkit.progress(f"ours: {JOBS} jobs every 5 s for {seconds:g} s")
    start, end = drive(scheduler, seconds)
    scheduler.close()
    client = redis.Redis.from_url(settings.REDIS_URL)
    lags, sent = [], []
    for name in beatkit.queue_lists("steady"):
        for raw in client.lrange(name, 0, -1):
            args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
            due = datetime.fromisoformat(kwargs["scheduled_for"]).timestamp()
            lags.append(datetime.fromisoformat(kwargs["sent_at"]).timestamp() - due)
            sent.append((args[0], due))
    window = (start + 1, end - 1)
    in_window = [(job, due) for job, due in sent if window[0] <= due <= window[1]]
    slots = sum(grid_slots(anchor.timestamp(), *window) for anchor in anchors.values())
    return {"lags": lags, "runs": len(set(in_window)), "doubled": len(in_window) - len(
        set(in_window)), "slots": slots}  # fmt: skip


def bare(redis_url: str, seconds: float) -> dict:
    """Bare RedBeat, its sends timed by a subclass that only records (due, sent)."""
    from celery import Celery
    from celery.schedules import schedule
    from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry

    records: list[tuple[str, float, float]] = []

    class Timed(RedBeatScheduler):
        def apply_async(self, entry, producer=None, advance=True, **kwargs):  # type: ignore[no-untyped-def]
            due = (entry.last_run_at + timedelta(seconds=EVERY)).timestamp()
            records.append((entry.name, due, time.time()))
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    app = Celery("bare", broker=redis_url)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_redis_options={},
                    redbeat_key_prefix="bare:", beat_max_loop_interval=1,
                    redbeat_lock_timeout=10, beat_schedule={})  # fmt: skip
    base = time.time() + 2
    anchors = {}
    for i in range(JOBS):
        entry = RedBeatSchedulerEntry(f"e{i}", "bare.noop", schedule(run_every=EVERY),
                                      options={"queue": "bare-steady"}, app=app)  # fmt: skip
        anchors[entry.name] = base + i * EVERY / JOBS
        entry.last_run_at = datetime.fromtimestamp(anchors[entry.name], UTC)
        entry.save()
    beatkit.progress(f"bare RedBeat: {JOBS} entries every 5 s for {seconds:g} s")
    scheduler = with_lock(Timed(app=app))
    start, end = drive(scheduler, seconds)
    scheduler.close()
    window = (start + 1, end - 1)
    in_window = [(name, due) for name, due, _ in records if window[0] <= due <= window[1]]
    slots = sum(grid_slots(anchor, *window) for anchor in anchors.values())
    return {"lags": [sent - due for _, due, sent in records], "runs": len(in_window),
            "doubled": 0, "slots": slots}  # fmt: skip


def describe(result: dict) -> str:
    lags = result["lags"]
    return (f"p50 {beatkit.seconds(beatkit.percentile(lags, 0.5))}, p99 "
            f"{beatkit.seconds(beatkit.percentile(lags, 0.99))}, runs {result['runs']} of "
            f"{result['slots']} slots")  # fmt: skip


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    seconds = QUICK_SECONDS if args.quick else SECONDS
    with beatkit.private_stack("beat-steady") as server:
        ours_result = ours(seconds)
        bare_result = bare(server.url, seconds)
    p99 = beatkit.percentile(ours_result["lags"], 0.99)
    met = p99 < 0.25 and ours_result["runs"] == ours_result["slots"] and not ours_result["doubled"]
    beatkit.report(f"{JOBS} interval jobs every 5 s for {seconds} s: beat's send lag, runs = slots",
                   "p99 under 250 ms, runs = slots", describe(ours_result),
                   describe(bare_result), p99 / beatkit.percentile(bare_result["lags"], 0.99),
                   met)  # fmt: skip


if __name__ == "__main__":
    main()
