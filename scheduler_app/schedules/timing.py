"""A job's whole timing: its fire times, and what happens at each one.

Beat fires the *fire times* (the schedule bounded by ``start_at``/``end_at`` and
moved by the job's jitter). At each fire time the worker decides, with
:meth:`Timing.decide`, whether it runs, is skipped by policy (outside the allowed
window, or on a date the job's calendar excludes), or is shifted to the next
allowed day. The preview, ``next_run_at`` and ``next-runs`` use the same
:meth:`Timing.plan`, so what users are shown is what runs.
"""

from __future__ import annotations

import re
import time as time_module
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler_app.schedules import zones
from scheduler_app.schedules.forms import (
    BoundedSchedule,
    CronSchedule,
    IntervalSchedule,
    JitteredSchedule,
    ManualSchedule,
    OnceSchedule,
    Schedule,
    UnionSchedule,
    jitter_offset,
)
from scheduler_app.schedules.limits import HORIZON
from scheduler_app.schedules.parse import INTERVAL_UNITS, WEEKDAYS, parse_instant
from scheduler_app.schedules.zones import ScheduleError

DAY_NAMES = [day[:3].title() for day in WEEKDAYS]
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# The fire times one plan looks at (each a next_after), at most: a request's budget.
MAX_PLAN_STEPS = 5000
# And the time a request's plans may take, however costly each fire time is.
PLAN_SECONDS = 0.5


@dataclass
class Budget:
    """How many fire times the plans of one request may still look at, and until when.

    Shared by the plans of a request that makes many (``GET /next-runs/`` over all
    of a user's jobs), so a request's work is bounded however hostile its jobs;
    ``exhausted`` tells that a plan stopped for it, not because the schedule ended.
    Without ``seconds`` (a job's own next_run_at) only the steps count, so the
    answer does not depend on how busy the machine is.
    """

    steps: int = MAX_PLAN_STEPS
    seconds: float | None = None
    exhausted: bool = False
    deadline: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.seconds is not None:
            self.deadline = time_module.monotonic() + self.seconds

    def spend(self) -> bool:
        """Take one step; False (and exhausted) when none is left."""
        out_of_time = (
            self.deadline is not None
            and self.steps % 32 == 0
            and time_module.monotonic() > self.deadline
        )
        if self.steps <= 0 or out_of_time:
            self.exhausted = True
            return False
        self.steps -= 1
        return True


def build(spec: dict[str, Any], zone: ZoneInfo, anchor: datetime, seed: str = "") -> Schedule:
    """The schedule of a canonical object; ``anchor`` is when it took effect, ``seed``
    fixes a job's Jenkins-style ``H`` cron fields."""
    kind = spec["type"]
    if kind == "cron":
        return CronSchedule(spec["expression"], zone, seed)
    if kind in ("hourly", "daily", "weekly", "monthly"):
        return CronSchedule(calendar_to_cron(spec), zone)
    if kind == "interval":
        seconds = spec["every"] * INTERVAL_UNITS[spec["unit"]]
        start = instant(spec["start_at"], zone) if spec.get("start_at") else None
        label = f"{spec['every']} {spec['unit']}" if spec["every"] != 1 else spec["unit"][:-1]
        if start is None:  # one period after the schedule took effect (never past the horizon)
            room = (HORIZON - anchor).total_seconds()
            start = anchor + timedelta(seconds=seconds) if seconds < room else HORIZON
        return IntervalSchedule(seconds, start, label)
    if kind == "once":
        return OnceSchedule(instant(spec["at"], zone))
    if kind == "manual":
        return ManualSchedule()
    if kind == "union":
        return UnionSchedule(
            tuple(build(member, zone, anchor, seed) for member in spec["schedules"])
        )
    raise ScheduleError(f"unknown schedule type {kind!r}.")


def fire_schedule(
    spec: dict[str, Any],
    zone: ZoneInfo,
    anchor: datetime,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    jitter: timedelta = timedelta(0),
    seed: str = "",
) -> Schedule:
    """The fire times beat evaluates: the schedule, bounded, then moved by the jitter."""
    schedule = build(spec, zone, anchor, seed)
    if start_at or end_at:
        schedule = BoundedSchedule(schedule, start_at, end_at)
    if jitter:
        schedule = JitteredSchedule(schedule, jitter)
    return schedule


def instant(value: str | datetime, zone: ZoneInfo) -> datetime:
    """An ISO 8601 instant in UTC; a naive one is a wall time in ``zone`` (DST policy applies)."""
    parsed = parse_instant(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        return zones.resolve(parsed, zone)
    return parsed.astimezone(UTC)


def calendar_to_cron(spec: dict[str, Any]) -> str:
    if spec["type"] == "hourly":
        return f"{spec['minute']} * * * *"
    hour, minute = (int(part) for part in spec["time"].split(":"))
    if spec["type"] == "daily":
        return f"{minute} {hour} * * *"
    if spec["type"] == "weekly":
        # Ours count from Monday = 0; cron counts from Sunday = 0.
        cron_days = ",".join(str((day + 1) % 7) for day in spec["days_of_week"])
        return f"{minute} {hour} * * {cron_days}"
    day = "L" if spec["day_of_month"] == -1 else spec["day_of_month"]
    return f"{minute} {hour} {day} * *"


# --- the allowed window ----------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Days of the week and a time span in the job zone; an end before the start spans midnight."""

    days: tuple[int, ...]
    start: time
    end: time

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Window:
        start, end = (time.fromisoformat(spec[key]) for key in ("start", "end"))
        return cls(tuple(spec["days_of_week"]), start, end)

    def allows(self, local: datetime) -> bool:
        now, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        # Overnight: the part after midnight belongs to the day the window opened.
        return (day in self.days and now >= self.start) or (
            (day - 1) % 7 in self.days and now < self.end
        )

    def describe(self) -> str:
        days = describe_days(self.days)
        return f"{self.start:%H:%M}-{self.end:%H:%M} " + (
            days if len(self.days) == 7 else f"on {days}"
        )


def describe_days(days: tuple[int, ...]) -> str:
    """(0, 1, 2, 3, 4, 6) -> 'Mon-Fri, Sun'; all seven -> 'every day'."""
    if len(days) == 7:
        return "every day"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
        for run in runs
    )


def normalize_window(value: Any) -> dict[str, Any] | None:
    """The canonical allowed window, or None; ScheduleError when it is malformed."""
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise ScheduleError(
            'must be an object such as {"days_of_week": [0, 1, 2, 3, 4], '
            '"start": "09:00", "end": "17:00"}.'
        )
    days = value.get("days_of_week", list(range(7)))
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
    ):
        raise ScheduleError("'days_of_week' must be a list of days, 0 (Monday) to 6 (Sunday).")
    times = {}
    for key in ("start", "end"):
        match = _CLOCK_RE.match(value.get(key, "")) if isinstance(value.get(key), str) else None
        if not match:
            raise ScheduleError(
                f"'{key}' must be HH:MM on a 24-hour clock; got {value.get(key)!r}."
            )
        times[key] = f"{int(match.group(1)):02d}:{match.group(2)}"
    if times["start"] == times["end"]:
        raise ScheduleError("'start' and 'end' must differ.")
    return {"days_of_week": sorted(set(days)), **times}


# --- the whole timing --------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What a fire time becomes: a run at ``run_at`` (maybe shifted), or a skip with a reason."""

    fire_time: datetime
    run_at: datetime | None
    skip_reason: str = ""


@dataclass(frozen=True)
class Timing:
    schedule: Schedule
    zone: ZoneInfo
    window: Window | None = None
    excluded: frozenset[date] = field(default_factory=frozenset)
    calendar_name: str = ""
    calendar_policy: str = "skip"

    @classmethod
    def with_policies(
        cls,
        schedule: Schedule,
        zone: ZoneInfo,
        window: dict[str, Any] | None,
        calendar: Any,
        calendar_policy: str,
    ) -> Timing:
        """A timing from stored values: ``window`` a canonical spec, ``calendar`` a
        Calendar (its ``name`` and ``excluded()`` dates), each possibly None."""
        return cls(
            schedule,
            zone,
            Window.from_spec(window) if window else None,
            calendar.excluded() if calendar else frozenset(),
            calendar.name if calendar else "",
            calendar_policy,
        )

    def decide(self, fire_time: datetime) -> Decision:
        local = zones.wall(fire_time, self.zone)
        if self.window and not self.window.allows(local):
            reason = f"outside the allowed window ({self.window.describe()} in {self.zone.key})"
            return Decision(fire_time, None, reason)
        if local.date() not in self.excluded:
            return Decision(fire_time, fire_time)
        if self.calendar_policy == "skip":
            reason = f"{local.date()} is excluded by the calendar {self.calendar_name!r}"
            return Decision(fire_time, None, reason)
        return Decision(fire_time, self._shift(local))

    def _shift(self, local: datetime) -> datetime | None:
        day = local.date()
        for _ in range(366):
            day += timedelta(days=1)
            if day not in self.excluded:
                shifted = zones.resolve(datetime.combine(day, local.time()), self.zone)
                return shifted if shifted < HORIZON else None
        return None

    def plan(
        self, after: datetime, count: int, budget: Budget | None = None
    ) -> tuple[list[datetime], list[Decision]]:
        """The next ``count`` run times after ``after``, and the fire times skipped on the way.

        Fewer when the schedule ends (or reaches the horizon), or when ``budget`` (by
        default MAX_PLAN_STEPS fire times) runs out: then ``budget.exhausted`` says so.
        """
        budget = budget if budget is not None else Budget()
        runs: set[datetime] = set()
        skipped: list[Decision] = []
        cursor = after
        while budget.spend():
            fire = self.schedule.next_after(cursor)
            if fire is None:
                break
            cursor = fire
            decision = self.decide(fire)
            if decision.run_at is None:
                skipped.append(decision)
            elif decision.run_at > after:
                runs.add(decision.run_at)
            # A shifted run can land after later fire times: stop only when the
            # first ``count`` runs all lie before the fire times still to come.
            if len([run for run in runs if run <= cursor]) >= count:
                break
        chosen = sorted(runs)[:count]
        horizon = chosen[-1] if len(chosen) == count else cursor
        return chosen, [s for s in skipped if s.fire_time <= horizon]

    def next_run(self, after: datetime) -> datetime | None:
        runs, _ = self.plan(after, 1)
        return runs[0] if runs else None

    def describe(self) -> str:
        parts = [self.schedule.describe()]
        if self.window:
            parts.append(f"only {self.window.describe()}")
        if self.calendar_name:
            verb = "skipping" if self.calendar_policy == "skip" else "moving to the next day"
            parts.append(f"{verb} dates in the calendar {self.calendar_name!r}")
        return "; ".join(parts)


def job_jitter(jitter: int, seed: str) -> timedelta:
    return jitter_offset(jitter, seed) if jitter else timedelta(0)


def from_beat_params(params: dict[str, Any]) -> Schedule:
    """The fire schedule from the plain values a job hands to beat (see Job.beat_params)."""

    def moment(key: str) -> datetime | None:
        return datetime.fromisoformat(params[key]) if params.get(key) else None

    return fire_schedule(
        params["spec"],
        zones.get_zone(params["timezone"]),
        datetime.fromisoformat(params["anchor"]),
        start_at=moment("start_at"),
        end_at=moment("end_at"),
        jitter=job_jitter(params.get("jitter") or 0, params.get("seed") or ""),
        seed=params.get("seed") or "",
    )
