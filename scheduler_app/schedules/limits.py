"""The bounds of every schedule computation: what may be written, and how far we look.

No fire time at or after :data:`HORIZON` (1 January 2200, UTC) is ever computed: a
schedule whose next fire time would lie beyond it has none (``next_after`` answers
None). Instants a user writes (``start_at``, ``end_at``, a once's ``at``) must lie
in [1970-01-02, :data:`HORIZON` less a day), and an interval may be at most
:data:`MAX_INTERVAL_SECONDS` long, so nothing stored can make date arithmetic
overflow later. These are checked where the values are read (parse.py, and the
job rules), so a job that would break them is a 400 at create, not a 500 at run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler_app.schedules.zones import ScheduleError

HORIZON = datetime(2200, 1, 1, tzinfo=UTC)
# What a user may write: a day inside [1970, HORIZON) on either side, so that no
# zone's offset (less than a day) can move a naive wall time out of it.
FIRST_DATE = datetime(1970, 1, 2)  # noqa: DTZ001 (a wall time, or UTC)
LAST_DATE = datetime(2199, 12, 31)  # noqa: DTZ001 (exclusive)
RANGE_TEXT = "from 1970-01-02 to 2199-12-30"
# The longest interval: 520 weeks, about ten years.
MAX_INTERVAL_SECONDS = 520 * 604800
MAX_INTERVAL_TEXT = "520 weeks (about 10 years)"
# A schedule written as text (cron, phrase) is at most this many characters.
MAX_SCHEDULE_TEXT = 1000


def check_instant(moment: datetime, field: str) -> datetime:
    """``moment`` unless it lies outside the dates a schedule may use; ScheduleError then.

    A naive ``moment`` is a wall time (read later in the job's zone) and is compared
    as it is; an aware one in UTC.
    """
    compared = moment
    if moment.tzinfo is not None:
        try:
            compared = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 with an offset
            compared = LAST_DATE
    if not FIRST_DATE <= compared < LAST_DATE:
        raise ScheduleError(
            f"'{field}' must be a date and time {RANGE_TEXT}; got {moment.isoformat()}."
        )
    return moment
