"""Cost of one ``next_after`` per schedule form, against plain datetime arithmetic.

A fresh schedule's ``next_after`` is what a job costs where nothing is shared (the
preview, a job's ``next_run_at``); beat asks the shared, remembering ``FireTimes`` of
``schedules.beat_cache`` instead (the second figure per form). The baseline is one
``datetime + timedelta``. Informational: no goal.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import beatkit

from scheduler_app.schedules import FireTimes, build, normalize

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1, seconds=7)  # past every first fire time
FORMS = {
    "interval every 5 minutes": ("every 5 minutes", "UTC"),
    "cron */5 * * * *": ("*/5 * * * *", "UTC"),
    "cron 0 9 * * 1-5, New York": ("0 9 * * 1-5", "America/New_York"),
    "cron 6 fields */10 s": ("*/10 * * * * *", "UTC"),
    "weekly mon,wed,fri 02:00": (
        {"type": "weekly", "days_of_week": [0, 2, 4], "time": "02:00"},
        "Europe/Paris",
    ),
}


def per_call(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    args = beatkit.arguments(__doc__ or "")
    number = 500 if args.quick else 2_000
    step = timedelta(minutes=5)
    baseline = per_call(lambda: NOW + step, 200_000)
    for label, (value, zone_name) in FORMS.items():
        zone = ZoneInfo(zone_name)
        spec = normalize(value, zone, NOW)
        cost = per_call(lambda spec=spec, zone=zone: build(spec, zone, NOW).next_after(LATER),
                        number)  # fmt: skip
        shared = FireTimes(build(spec, zone, NOW))
        ticks = iter(LATER + timedelta(microseconds=n) for n in range(10 * number))
        cached = per_call(lambda f=shared, t=ticks: f.next_after(next(t)), number)
        baseline_text = f"{baseline:.3f} us (datetime + timedelta)"
        beatkit.report(f"next_after, {label}, fresh schedule", "-", f"{cost:.1f} us",
                       baseline_text, cost / baseline, None)  # fmt: skip
        beatkit.report(f"next_after, {label}, beat's shared fire times", "-",
                       f"{cached:.2f} us", baseline_text, cached / baseline, None)  # fmt: skip


if __name__ == "__main__":
    main()
