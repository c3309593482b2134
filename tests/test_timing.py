"""Windows, exclusion calendars, jitter and bounds, and the preview that shows them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler_app import schedules
from scheduler_app.models import Calendar
from scheduler_app.schedules import (
    ScheduleError,
    Timing,
    Window,
    build,
    normalize,
    normalize_window,
)
from tests.helpers import make_job

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 21, 6, 0, tzinfo=UTC)  # a Monday, 07:00 in Paris


def hourly(zone=PARIS) -> schedules.Schedule:
    return build(normalize("hourly", zone, NOW), zone, NOW)


def local(moments) -> list[str]:
    return [m.astimezone(PARIS).strftime("%a %H:%M") for m in moments]


def test_a_window_skips_fire_times_outside_it_with_a_reason():
    window = Window.from_spec(
        normalize_window({"days_of_week": [0, 1, 2, 3, 4], "start": "09:00", "end": "11:00"})
    )
    runs, skipped = Timing(hourly(), PARIS, window).plan(NOW, 3)
    assert local(runs) == ["Mon 09:00", "Mon 10:00", "Tue 09:00"]
    assert local(s.fire_time for s in skipped)[:2] == ["Mon 08:00", "Mon 11:00"]
    assert (
        skipped[0].skip_reason
        == "outside the allowed window (09:00-11:00 on Mon-Fri in Europe/Paris)"
    )


def test_an_overnight_window_spans_midnight():
    window = Window.from_spec({"days_of_week": [4], "start": "22:00", "end": "02:00"})
    # Windows read naive wall-clock times in the job's zone.
    assert window.allows(datetime(2026, 12, 25, 23, 0))  # noqa: DTZ001  # Friday night
    assert window.allows(datetime(2026, 12, 26, 1, 0))  # noqa: DTZ001  # early Saturday: still Friday's window
    assert not window.allows(datetime(2026, 12, 26, 23, 0))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "09:00"}, "'end' must be HH:MM"),
        ({"start": "09:00", "end": "09:00"}, "must differ"),
        ({"days_of_week": [9], "start": "09:00", "end": "10:00"}, "'days_of_week'"),
        ("weekdays", "must be an object"),
    ],
)
def test_bad_windows_are_refused(window, message):
    with pytest.raises(ScheduleError, match=message):
        normalize_window(window)


def test_a_calendar_skips_or_shifts_excluded_days():
    daily = build(normalize("daily at 09:00", PARIS, NOW), PARIS, NOW)
    christmas = frozenset({date(2026, 12, 24), date(2026, 12, 25)})
    runs, skipped = Timing(daily, PARIS, None, christmas, "holidays", "skip").plan(NOW, 2)
    assert [r.date().isoformat() for r in runs] == ["2026-12-21", "2026-12-22"]
    runs, skipped = Timing(daily, PARIS, None, christmas, "holidays", "skip").plan(NOW, 4)
    assert [r.astimezone(PARIS).date().isoformat() for r in runs] == [
        "2026-12-21",
        "2026-12-22",
        "2026-12-23",
        "2026-12-26",
    ]
    assert [s.skip_reason for s in skipped] == [
        "2026-12-24 is excluded by the calendar 'holidays'",
        "2026-12-25 is excluded by the calendar 'holidays'",
    ]
    weekly = build(normalize("thursday at 09:00", PARIS, NOW), PARIS, NOW)
    runs, _ = Timing(weekly, PARIS, None, christmas, "holidays", "shift").plan(NOW, 2)
    # Thursday 24th moves to the next allowed day, Saturday 26th, at the same wall time.
    assert [r.astimezone(PARIS).isoformat() for r in runs] == [
        "2026-12-26T09:00:00+01:00",
        "2026-12-31T09:00:00+01:00",
    ]


def test_jitter_is_a_fixed_offset_per_job_within_the_bound():
    offsets = {schedules.job_jitter(300, f"job:{i}") for i in range(50)}
    assert all(timedelta(0) <= o < timedelta(seconds=300) for o in offsets)
    assert len(offsets) > 40  # spread, not bunched
    assert schedules.job_jitter(300, "job:7") == schedules.job_jitter(300, "job:7")
    spec = normalize("0 * * * *", PARIS, NOW)
    schedule = schedules.fire_schedule(spec, PARIS, NOW, jitter=timedelta(seconds=42))
    # The 06:00 fire time moves to 06:00:42, so it is still to come at 06:00.
    assert schedule.next_after(NOW) == datetime(2026, 12, 21, 6, 0, 42, tzinfo=UTC)
    assert schedule.next_after(datetime(2026, 12, 21, 6, 0, 42, tzinfo=UTC)) == datetime(
        2026, 12, 21, 7, 0, 42, tzinfo=UTC
    )


def test_start_and_end_bound_the_fire_times():
    spec = normalize("0 * * * *", PARIS, NOW)
    start, end = NOW + timedelta(hours=5), NOW + timedelta(hours=7)
    schedule = schedules.fire_schedule(spec, PARIS, NOW, start_at=start, end_at=end)
    assert schedules.upcoming(schedule, NOW, 10) == [start, start + timedelta(hours=1), end]


# --- through the API ---------------------------------------------------------------


def test_preview_gives_local_times_skips_and_dst_warnings(api):
    response = api.post(
        "/api/v1/schedules/preview/",
        {
            "schedule": "daily at 02:30",
            "timezone": "America/New_York",
            "count": 2,
            "window": {"days_of_week": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:00"},
        },
        format="json",
    )
    assert response.status_code == 200, response.data
    data = response.data
    assert data["timezone"] == "America/New_York"
    assert [t[11:] for t in data["next_runs_local"]] in (
        ["02:30:00-05:00"] * 2,
        ["02:30:00-04:00"] * 2,
    )
    assert data["description"] == "At 02:30; only 00:00-23:00 every day"
    assert any(
        "does not exist in America/New_York" in w and "03:00 EDT" in w for w in data["warnings"]
    )
    assert not any("happens twice" in w for w in data["warnings"])  # 02:30 is not doubled


def test_preview_warns_when_a_schedule_never_runs_before_end_at(api):
    start = datetime.now(UTC) + timedelta(days=1)
    response = api.post(
        "/api/v1/schedules/preview/",
        {
            "schedule": "0 0 1 1 *",
            "start_at": start.isoformat(),
            "end_at": (start + timedelta(days=2)).isoformat(),
        },
        format="json",
    )
    assert response.data["next_runs"] == []
    assert response.data["warnings"][-1] == "This schedule never runs before end_at."
    bad = api.post(
        "/api/v1/schedules/preview/",
        {"schedule": "hourly", "start_at": start.isoformat(), "end_at": start.isoformat()},
        format="json",
    )
    assert bad.status_code == 400 and bad.data == {"end_at": ["must be later than start_at."]}


def test_a_job_uses_its_calendar_window_and_jitter_in_next_runs(api, owner):
    calendar = api.post(
        "/api/v1/calendars/", {"name": "holidays", "dates": ["2030-01-01"]}, format="json"
    )
    assert calendar.status_code == 201, calendar.data
    job = api.post(
        "/api/v1/jobs/",
        {
            "name": "new year",
            "payload": {"command": "true"},
            "schedule": "daily at 09:00",
            "timezone": "Europe/Paris",
            "start_at": "2029-12-31T00:00:00Z",
            "calendar": calendar.data["id"],
            "calendar_policy": "shift",
            "jitter": 120,
        },
        format="json",
    )
    assert job.status_code == 201, job.data
    times = api.get(f"/api/v1/jobs/{job.data['id']}/next-runs/?count=2").data["next_runs"]
    offset = schedules.job_jitter(120, f"job:{job.data['id']}").total_seconds()
    first = datetime(2029, 12, 31, 8, 0, tzinfo=UTC) + timedelta(seconds=offset)
    assert times == [
        first.isoformat().replace("+00:00", "Z"),
        (first + timedelta(days=2)).isoformat().replace("+00:00", "Z"),
    ]
    assert job.data["next_run_at"] == times[0]
    assert api.delete(f"/api/v1/calendars/{calendar.data['id']}/").status_code == 400


def test_a_calendar_change_moves_next_run_at(api, owner):
    calendar = Calendar.objects.create(owner=owner, name="c", dates=[])
    job = make_job(
        owner,
        name="j",
        schedule={"type": "daily", "time": "09:00"},
        calendar=calendar,
        start_at=datetime(2030, 5, 1, tzinfo=UTC),
    )
    assert job.next_run_at == datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
    response = api.patch(
        f"/api/v1/calendars/{calendar.id}/", {"dates": ["2030-05-01"]}, format="json"
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.next_run_at == datetime(2030, 5, 2, 9, 0, tzinfo=UTC)


def test_bad_calendar_dates_get_a_400(api):
    response = api.post("/api/v1/calendars/", {"name": "x", "dates": ["2030-02-30"]}, format="json")
    assert response.status_code == 400 and "dates" in response.data


def test_preview_of_a_jenkins_h_cron_over_a_dst_change(api):
    response = api.post(
        "/api/v1/schedules/preview/",
        {"schedule": "H * * * *", "timezone": "Europe/London"},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert len(response.data["next_runs"]) == 5
