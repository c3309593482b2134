"""DST: the documented policy, for three zones over several years, and a brute-force oracle.

Policy (scheduler_app/schedules/zones.py): a wall time that does not exist fires
once at the first instant after the gap; a wall time that happens twice fires
once, at its first occurrence; intervals ignore DST.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler_app.schedules import build, normalize, upcoming
from scheduler_app.schedules.advice import transition_days

# zone: (a wall time skipped on spring-forward days, where it fires, a doubled wall time,
#        the UTC offset of its first occurrence)
ZONES = {
    "America/New_York": (time(2, 30), time(3, 0), time(1, 30), timedelta(hours=-4)),
    "Europe/London": (time(1, 30), time(2, 0), time(1, 30), timedelta(hours=1)),
    "Australia/Lord_Howe": (time(2, 15), time(2, 30), time(1, 45), timedelta(hours=11)),
}
YEARS = range(2025, 2031)
EACH_ZONE_AND_YEAR = pytest.mark.parametrize(
    ("zone_name", "year"), list(itertools.product(ZONES, YEARS))
)


def daily_fires_on(zone_name: str, at: time, day: date) -> list[datetime]:
    zone = ZoneInfo(zone_name)
    start = datetime.combine(day - timedelta(days=1), time(12), zone)
    spec = normalize(f"daily at {at:%H:%M}", zone, start)
    fires = upcoming(build(spec, zone, start), start, 3)
    return [f.astimezone(zone) for f in fires if f.astimezone(zone).date() == day]


def spring_and_fall_days(zone_name: str, year: int) -> tuple[date, date]:
    zone = ZoneInfo(zone_name)
    days = transition_days(
        zone, datetime(year, 1, 1, tzinfo=UTC), datetime(year, 12, 31, tzinfo=UTC)
    )
    assert len(days) == 2, days
    by_gain = sorted(days, key=lambda d: -_offset_change(zone, d))
    return by_gain[0].date(), by_gain[1].date()


def _offset_change(zone: ZoneInfo, day: datetime) -> float:
    before = day.replace(tzinfo=zone).utcoffset()
    after = (day + timedelta(hours=23, minutes=59)).replace(tzinfo=zone).utcoffset()
    return (after - before).total_seconds()


@EACH_ZONE_AND_YEAR
def test_a_skipped_wall_time_fires_once_at_the_end_of_the_gap(zone_name, year):
    skipped, fires_at, _, _ = ZONES[zone_name]
    spring, _ = spring_and_fall_days(zone_name, year)
    fires = daily_fires_on(zone_name, skipped, spring)
    assert [f.time() for f in fires] == [fires_at]


@EACH_ZONE_AND_YEAR
def test_a_doubled_wall_time_fires_once_at_its_first_occurrence(zone_name, year):
    _, _, doubled, first_offset = ZONES[zone_name]
    _, fall = spring_and_fall_days(zone_name, year)
    fires = daily_fires_on(zone_name, doubled, fall)
    assert [(f.time(), f.utcoffset()) for f in fires] == [(doubled, first_offset)]


@pytest.mark.parametrize("zone_name", ZONES)
def test_a_quarter_hourly_cron_fires_once_per_distinct_instant_on_dst_days(zone_name):
    zone = ZoneInfo(zone_name)
    spring, fall = spring_and_fall_days(zone_name, 2026)
    shift = {"Australia/Lord_Howe": 30}.get(zone_name, 60)  # minutes
    # Spring: the skipped quarters fire at the end of the gap, which is a fire time itself.
    for day, expected in ((spring, 96 - shift // 15), (fall, 96)):
        start = datetime.combine(day, time(), zone).astimezone(UTC) - timedelta(seconds=1)
        end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        schedule = build(normalize("*/15 * * * *", zone, start), zone, start)
        fires = [f for f in upcoming(schedule, start, 200) if f < end]
        assert len(fires) == len(set(fires)) == expected, day
        assert fires == sorted(fires)


@pytest.mark.parametrize("zone_name", ZONES)
def test_intervals_keep_exact_spacing_across_dst(zone_name):
    zone = ZoneInfo(zone_name)
    spring, fall = spring_and_fall_days(zone_name, 2027)
    for day in (spring, fall):
        start = datetime.combine(day, time(), zone).astimezone(UTC)
        schedule = build(normalize("every 30 minutes", zone, start), zone, start)
        fires = upcoming(schedule, start, 60)
        assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(minutes=30)}


# --- an independent oracle -----------------------------------------------------


def field_values(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first, last = (int(x) for x in body.split("-"))
        else:
            first = last = int(body)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    return values


def oracle_next(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """Step through UTC minutes, reading each on the zone's wall clock.

    A match that a spring-forward skipped fires at the first minute after the jump;
    a wall time seen before (a fall-back repeat) does not fire again.
    """
    minute, hour, dom, month, dow = expression.split()
    sets = [
        field_values(minute, 0, 59),
        field_values(hour, 0, 23),
        field_values(dom, 1, 31),
        field_values(month, 1, 12),
        {d % 7 for d in field_values(dow, 0, 7)},
    ]

    def matches(w: datetime) -> bool:
        day_ok = (w.day in sets[2], (w.weekday() + 1) % 7 in sets[4])
        if not dom.startswith("*") and not dow.startswith("*"):  # Vixie: both restricted
            day_matches = day_ok[0] or day_ok[1]
        else:
            day_matches = day_ok[0] and day_ok[1]
        return w.minute in sets[0] and w.hour in sets[1] and w.month in sets[3] and day_matches

    def wall(x: datetime) -> datetime:
        return x.astimezone(zone).replace(tzinfo=None)

    high_water = max(wall(after - timedelta(minutes=m)) for m in range(0, 180))
    x = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    previous = wall(x - timedelta(minutes=1))
    for _ in range(60 * 24 * 9):
        w = wall(x)
        jumped = w - previous > timedelta(minutes=1)
        skipped_match = jumped and any(
            matches(previous + timedelta(minutes=k))
            for k in range(1, int((w - previous).total_seconds() // 60))
        )
        if (w > high_water and matches(w)) or skipped_match:
            return x
        high_water = max(high_water, w)
        previous = w
        x += timedelta(minutes=1)
    return None


def cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        st.integers(2, 20).map(lambda k: f"*/{k}"),
        number.map(str),
        st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(number, min_size=2, max_size=4, unique=True).map(
            lambda v: ",".join(map(str, sorted(v)))
        ),
    )


TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC), datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2027, 3, 28, 1, 0, tzinfo=UTC), datetime(2027, 10, 31, 1, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
]  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=cron_field(0, 59),
    hour=cron_field(0, 23),
    dom=st.one_of(st.just("*"), st.just("*"), cron_field(1, 28)),
    dow=st.one_of(st.just("*"), st.just("1-5"), cron_field(0, 6)),
    zone_name=st.sampled_from([*ZONES, "UTC", "Asia/Kolkata"]),
    near=st.sampled_from(TRANSITIONS),
    offset=st.integers(-48 * 3600, 48 * 3600),
)
def test_next_after_agrees_with_a_brute_force_oracle(
    minute, hour, dom, dow, zone_name, near, offset
):
    expression = f"{minute} {hour} {dom} * {dow}"
    zone = ZoneInfo(zone_name)
    after = near + timedelta(seconds=offset)
    expected = oracle_next(expression, zone, after)
    assume(expected is not None)
    schedule = build(normalize(expression, zone, after), zone, after)
    assert schedule.next_after(after) == expected
