"""Cost of one ``next_after`` per schedule form, against plain datetime arithmetic.

Beat calls ``next_after`` for each due entry every tick, so this is the per-job
cost of scheduling. Prints microseconds per call and the ratio to the baseline.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler_app.schedules import build, normalize

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
    step = timedelta(minutes=5)
    baseline = per_call(lambda: NOW + step, 200_000)
    print(f"{'baseline: datetime + timedelta':32} {baseline:9.3f} us/call   1.0x")
    for label, (value, zone_name) in FORMS.items():
        zone = ZoneInfo(zone_name)
        schedule = build(normalize(value, zone, NOW), zone, NOW)

        cost = per_call(lambda s=schedule: s.next_after(LATER), 2_000)
        print(f"{label:32} {cost:9.3f} us/call {cost / baseline:8.0f}x")


if __name__ == "__main__":
    main()
