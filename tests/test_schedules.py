"""The schedule module: every form, parsed and evaluated, and what it refuses."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler_app import schedules
from scheduler_app.schedules import ScheduleError, build, normalize, upcoming

NOW = datetime(2026, 3, 2, 10, 0, 7, tzinfo=UTC)  # a Monday
UTC_ZONE = ZoneInfo("UTC")


def fires(value, zone="UTC", count=3, after=NOW):
    tz = ZoneInfo(zone)
    spec = normalize(value, tz, NOW)
    return [t.isoformat() for t in upcoming(build(spec, tz, NOW), after, count)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "*/5 * * * *",
            ["2026-03-02T10:05:00+00:00", "2026-03-02T10:10:00+00:00", "2026-03-02T10:15:00+00:00"],
        ),
        (
            "0 9 * * 1-5",
            ["2026-03-03T09:00:00+00:00", "2026-03-04T09:00:00+00:00", "2026-03-05T09:00:00+00:00"],
        ),
        (
            "0 9 * * mon-fri",
            ["2026-03-03T09:00:00+00:00", "2026-03-04T09:00:00+00:00", "2026-03-05T09:00:00+00:00"],
        ),
        (
            "@daily",
            ["2026-03-03T00:00:00+00:00", "2026-03-04T00:00:00+00:00", "2026-03-05T00:00:00+00:00"],
        ),
        (
            "*/20 * * * * *",
            ["2026-03-02T10:00:20+00:00", "2026-03-02T10:00:40+00:00", "2026-03-02T10:01:00+00:00"],
        ),
        (
            {"type": "cron", "expression": "0 0 1 * *"},
            ["2026-04-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00"],
        ),
        (
            "every 30 seconds",
            ["2026-03-02T10:00:37+00:00", "2026-03-02T10:01:07+00:00", "2026-03-02T10:01:37+00:00"],
        ),
        (
            "every 2 hours",
            ["2026-03-02T12:00:07+00:00", "2026-03-02T14:00:07+00:00", "2026-03-02T16:00:07+00:00"],
        ),
        (
            {"type": "interval", "every": 5, "unit": "minutes", "start_at": "2026-03-02T10:02:00Z"},
            ["2026-03-02T10:02:00+00:00", "2026-03-02T10:07:00+00:00", "2026-03-02T10:12:00+00:00"],
        ),
        (
            "hourly",
            ["2026-03-02T11:00:00+00:00", "2026-03-02T12:00:00+00:00", "2026-03-02T13:00:00+00:00"],
        ),
        (
            {"type": "hourly", "minute": 15},
            ["2026-03-02T10:15:00+00:00", "2026-03-02T11:15:00+00:00", "2026-03-02T12:15:00+00:00"],
        ),
        (
            "Daily at 10:30",
            ["2026-03-02T10:30:00+00:00", "2026-03-03T10:30:00+00:00", "2026-03-04T10:30:00+00:00"],
        ),
        (
            "monday at 09:00",
            ["2026-03-09T09:00:00+00:00", "2026-03-16T09:00:00+00:00", "2026-03-23T09:00:00+00:00"],
        ),
        (
            {"type": "weekly", "days_of_week": [0, 2, 4], "time": "02:00"},
            ["2026-03-04T02:00:00+00:00", "2026-03-06T02:00:00+00:00", "2026-03-09T02:00:00+00:00"],
        ),
        (
            {"type": "monthly", "day_of_month": -1, "time": "23:00"},
            ["2026-03-31T23:00:00+00:00", "2026-04-30T23:00:00+00:00", "2026-05-31T23:00:00+00:00"],
        ),
        ({"type": "once", "at": "2026-12-01T09:00:00Z"}, ["2026-12-01T09:00:00+00:00"]),
        ("manual", []),
    ],
)
def test_it_computes_fire_times_for_every_form(value, expected):
    assert fires(value) == expected


def test_cron_is_read_in_the_jobs_time_zone():
    # 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC after 8 March 2026 (EDT).
    assert fires(
        "0 9 * * *", "America/New_York", count=2, after=datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
    ) == ["2026-03-08T13:00:00+00:00", "2026-03-09T13:00:00+00:00"]


def test_a_naive_once_time_is_read_in_the_jobs_time_zone():
    assert fires({"type": "once", "at": "2026-12-01T09:00:00"}, "Europe/Paris") == [
        "2026-12-01T08:00:00+00:00"
    ]


def test_intervals_ignore_daylight_saving_changes():
    spec = normalize("every 1 hours", ZoneInfo("Europe/London"), NOW)
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # clocks go forward at 01:00 UTC
    times = upcoming(build(spec, ZoneInfo("Europe/London"), start), start, 3)
    assert [t - start for t in times] == [timedelta(hours=h) for h in (1, 2, 3)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0 0 31 2 *", "never fires"),
        ("61 * * * *", "invalid cron expression"),
        ("* * *", "has 3 fields"),
        ("every -5 minutes", "could not understand"),
        ("every 5 fortnights", "could not understand"),
        ("sometimes", "could not understand"),
        ("", "must not be empty"),
        ({"type": "interval", "every": -5, "unit": "minutes"}, "'every' must be a positive"),
        ({"type": "interval", "every": 0}, "'every' must be a positive"),
        ({"type": "interval", "every": 5, "unit": "fortnights"}, "'unit' must be one of"),
        ({"type": "once", "at": "2020-01-01T00:00:00Z"}, "is in the past"),
        ({"type": "once", "at": "tomorrow"}, "must be an ISO 8601"),
        ({"type": "once"}, "needs 'at'"),
        ({"type": "cron"}, "needs 'expression'"),
        ({"type": "weekly", "days_of_week": [7], "time": "02:00"}, "'days_of_week'"),
        ({"type": "daily", "time": "25:00"}, "'time' must be HH:MM"),
        ({"type": "monthly", "day_of_month": 32}, "'day_of_month'"),
        ({"type": "yearly"}, "'type' must be one of"),
        (42, "must be a string"),
    ],
)
def test_it_refuses_what_it_cannot_run_with_a_message(value, message):
    with pytest.raises(ScheduleError, match=message):
        normalize(value, UTC_ZONE, NOW)


def test_unknown_time_zones_are_refused():
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        schedules.get_zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("every 5 minutes", "Every 5 minutes"),
        ("every 1 hours", "Every hour"),
        ("@daily", "At 00:00"),
        ("manual", "Manually"),
    ],
)
def test_it_describes_schedules_in_words(value, description):
    spec = normalize(value, UTC_ZONE, NOW)
    assert build(spec, UTC_ZONE, NOW).describe() == description


@given(
    st.one_of(
        st.text(max_size=40),
        st.dictionaries(
            st.sampled_from(
                ["type", "every", "unit", "at", "expression", "time", "days_of_week", "minute"]
            ),
            st.one_of(
                st.text(max_size=10),
                st.integers(-100, 100),
                st.none(),
                st.sampled_from(["cron", "interval", "once", "daily", "weekly", "monthly"]),
            ),
        ),
    )
)
def test_random_input_only_ever_raises_a_schedule_error(value):
    with contextlib.suppress(ScheduleError):
        normalize(value, UTC_ZONE, NOW)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 L * *", ["2026-03-31", "2026-04-30", "2026-05-31"]),
        ("0 0 15W * *", ["2026-03-16", "2026-04-15", "2026-05-15"]),  # 15 March is a Sunday
        ("0 0 * * 1#2", ["2026-03-09", "2026-04-13", "2026-05-11"]),  # second Monday
        ("0 0 * * 5L", ["2026-03-27", "2026-04-24", "2026-05-29"]),  # last Friday (Quartz)
        ("0 0 * * L5", ["2026-03-27", "2026-04-24", "2026-05-29"]),
        ("0 0 ? * MON", ["2026-03-09", "2026-03-16", "2026-03-23"]),
        ("0 0 1 jan *", ["2027-01-01", "2028-01-01", "2029-01-01"]),
        ("0 0 * * 7", ["2026-03-08", "2026-03-15", "2026-03-22"]),  # 7 is Sunday too
        # Vixie rule: a restricted day-of-month OR a restricted day-of-week.
        ("0 0 13 * 5", ["2026-03-06", "2026-03-13", "2026-03-20"]),
        ("@monthly", ["2026-04-01", "2026-05-01", "2026-06-01"]),
        ("@yearly", ["2027-01-01", "2028-01-01", "2029-01-01"]),
        ("0 0 29 2 *", ["2028-02-29", "2032-02-29", "2036-02-29"]),
        ("0 0 29 2 */7", ["2032-02-29", "2060-02-29", "2088-02-29"]),  # 29 Feb on a Sunday
        ("0 0 1 * 5L", ["2026-03-27", "2026-04-01", "2026-04-24"]),  # the 1st or the last Friday
    ],
)
def test_the_full_cron_dialect(expression, expected):
    assert [t[:10] for t in fires(expression)] == expected


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("5-5/2 * * * *", "5 * * * *"),  # croniter reads a one-value range as the whole field
        ("0 0 * * mon-mon", "0 0 * * 1"),
        ("0 0 * * 7/1", "0 0 * * 0"),  # day-of-week a/n runs to 7, not 6
        ("0 0 * * 5/2", "0 0 * * 5,0"),
        ("0 0 2-31,L * *", "0 0 2-31 * *"),  # croniter counts L as a 31st value
    ],
)
def test_what_croniter_reads_otherwise_is_read_as_cron_does(expression, same_as):
    after = datetime(2026, 3, 30, tzinfo=UTC)
    assert fires(expression, count=8, after=after) == fires(same_as, count=8, after=after)


@pytest.mark.parametrize(
    ("phrase", "spec"),
    [
        ("weekdays at 9:00", {"type": "weekly", "days_of_week": [0, 1, 2, 3, 4], "time": "09:00"}),
        (
            "every monday, wednesday at 18:15",
            {"type": "weekly", "days_of_week": [0, 2], "time": "18:15"},
        ),
        ("Mon, Wed and Fri at 7pm", {"type": "weekly", "days_of_week": [0, 2, 4], "time": "19:00"}),
        ("weekends at noon", {"type": "weekly", "days_of_week": [5, 6], "time": "12:00"}),
        ("every day at 6:30am", {"type": "daily", "time": "06:30"}),
        ("at 23:59", {"type": "daily", "time": "23:59"}),
        ("first day of month at 00:00", {"type": "monthly", "day_of_month": 1, "time": "00:00"}),
        (
            "last day of the month at 18:00",
            {"type": "monthly", "day_of_month": -1, "time": "18:00"},
        ),
        (
            "every month on the 15th at 08:00",
            {"type": "monthly", "day_of_month": 15, "time": "08:00"},
        ),
        ("every 15 mins", {"type": "interval", "every": 15, "unit": "minutes"}),
        ("every minute", {"type": "interval", "every": 1, "unit": "minutes"}),
        ("every other day", {"type": "interval", "every": 2, "unit": "days"}),
        ("every 2 weeks", {"type": "interval", "every": 2, "unit": "weeks"}),
        ("EVERY 30 SECONDS", {"type": "interval", "every": 30, "unit": "seconds"}),
        ("weekly", {"type": "weekly", "days_of_week": [0], "time": "00:00"}),
        ("monthly", {"type": "monthly", "day_of_month": 1, "time": "00:00"}),
        (
            ["weekdays at 09:00", "saturday at 12:00"],
            {
                "type": "union",
                "schedules": [
                    {"type": "weekly", "days_of_week": [0, 1, 2, 3, 4], "time": "09:00"},
                    {"type": "weekly", "days_of_week": [5], "time": "12:00"},
                ],
            },
        ),
    ],
)
def test_phrases_users_type(phrase, spec):
    assert normalize(phrase, UTC_ZONE, NOW) == spec


def test_an_unparseable_phrase_says_what_was_understood():
    with pytest.raises(ScheduleError) as error:
        normalize("every mondy at 9:00", UTC_ZONE, NOW)
    assert "understood 'every at 9:00', but not 'mondy'" in str(error.value)


def test_a_union_fires_each_instant_once():
    spec = normalize(["0 9 * * *", "0 9 * * 1-5", "every 12 hours"], UTC_ZONE, NOW)
    times = upcoming(build(spec, UTC_ZONE, NOW), NOW, 6)
    assert len(times) == len(set(times)) == 6
    assert times == sorted(times)


def test_union_members_report_their_errors_with_their_place():
    with pytest.raises(ScheduleError, match=r"schedule 2 of the list: .*never fires"):
        normalize(["0 9 * * *", "0 0 30 2 *"], UTC_ZONE, NOW)


def test_jenkins_h_fields_are_fixed_per_job():
    spec = normalize("H H(0-5) * * *", UTC_ZONE, NOW)
    first = {seed: build(spec, UTC_ZONE, NOW, seed).next_after(NOW) for seed in ("job:1", "job:2")}
    assert first["job:1"] != first["job:2"]
    assert all(t.hour <= 5 for t in first.values())
    assert build(spec, UTC_ZONE, NOW, "job:1").next_after(NOW) == first["job:1"]


# --- a schedule object asked again: the walk it keeps never changes an answer -------------


@given(
    asks=st.lists(st.integers(0, 3 * 86400), min_size=1, max_size=12),
    value=st.sampled_from(
        ["*/7 * * * * *", "30 2 * * *", "0 0 29 2 1", ["*/5 * * * *", "0 */3 * * *"]]
    ),
)
def test_a_reused_schedule_answers_as_a_fresh_one(asks, value):
    zone = ZoneInfo("America/New_York")
    spec = normalize(value, zone, NOW)
    reused = build(spec, zone, NOW)
    start = datetime(2026, 3, 7, tzinfo=UTC)  # a spring-forward weekend
    for seconds in asks:
        after = start + timedelta(seconds=seconds)
        fire = reused.next_after(after)
        assert fire == build(spec, zone, NOW).next_after(after)
        if fire is not None:  # and the next one, as a plan asks
            assert reused.next_after(fire) == build(spec, zone, NOW).next_after(fire)


def test_no_fire_time_reaches_the_horizon():
    late = datetime(2199, 12, 31, 23, 0, tzinfo=UTC)
    for value in ("* * * * * *", "every 1 seconds", {"type": "once", "at": "2199-12-30T12:00"}):
        schedule = build(normalize(value, UTC_ZONE, NOW), UTC_ZONE, late)
        times = upcoming(schedule, late, 5000)
        assert times == [] or times[-1] < schedules.HORIZON
    assert (
        build(normalize("hourly", UTC_ZONE, NOW), UTC_ZONE, NOW).next_after(schedules.HORIZON)
        is None
    )
