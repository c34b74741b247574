"""When editions are due, with a controlled clock: daylight-saving changes, misfires, coalescing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from newsletter.slots import Schedule, SlotTrigger, due_slot, parse_slot, slot_id

UTC = timezone.utc
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs_on(schedule: Schedule, zone: str, day: str) -> list[str]:
    """The local wall times of the runs whose local date is `day`."""
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz) - 30 * HOUR
    return [t.astimezone(tz).isoformat() for t in schedule.between(start, start + 60 * HOUR)
            if t.astimezone(tz).date().isoformat() == day]


def test_a_time_skipped_by_spring_forward_runs_once_just_after_the_change() -> None:
    new_york = Schedule("30 2 * * *", "America/New_York")
    assert runs_on(new_york, "America/New_York", "2026-03-07") == ["2026-03-07T02:30:00-05:00"]
    # 02:30 does not exist on 8 March 2026 in New York: it runs once, at 03:30 daylight time.
    assert runs_on(new_york, "America/New_York", "2026-03-08") == ["2026-03-08T03:30:00-04:00"]
    assert runs_on(new_york, "America/New_York", "2026-03-09") == ["2026-03-09T02:30:00-04:00"]
    madrid = Schedule("30 2 * * *", "Europe/Madrid")
    assert runs_on(madrid, "Europe/Madrid", "2026-03-29") == ["2026-03-29T03:30:00+02:00"]


def test_a_time_repeated_by_fall_back_runs_once_at_its_first_occurrence() -> None:
    new_york = Schedule("30 1 * * *", "America/New_York")
    assert runs_on(new_york, "America/New_York", "2026-11-01") == ["2026-11-01T01:30:00-04:00"]
    assert runs_on(new_york, "America/New_York", "2026-11-02") == ["2026-11-02T01:30:00-05:00"]
    madrid = Schedule("30 2 * * *", "Europe/Madrid")
    assert runs_on(madrid, "Europe/Madrid", "2026-10-25") == ["2026-10-25T02:30:00+02:00"]
    # A half-hourly schedule through the repeated hour: each wall time once, in order.
    half_hourly = Schedule("*/30 1-2 * * *", "America/New_York")
    assert runs_on(half_hourly, "America/New_York", "2026-11-01") == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:30:00-05:00"]


def test_the_trigger_walks_through_both_changes_without_repeating() -> None:
    trigger = SlotTrigger(Schedule("30 1 * * *", "America/New_York"))
    fired: list[datetime] = []
    previous = None
    now = utc(2026, 10, 30)
    for _ in range(4):
        previous = trigger.get_next_fire_time(previous, now)
        fired.append(previous)
    assert [t.isoformat() for t in fired] == [
        "2026-10-30T05:30:00+00:00", "2026-10-31T05:30:00+00:00", "2026-11-01T05:30:00+00:00",
        "2026-11-02T06:30:00+00:00"]


def test_a_run_missed_within_grace_happens_once_and_beyond_grace_not_at_all() -> None:
    daily = Schedule("0 7 * * *", "America/Bogota")  # 12:00 UTC
    slot = utc(2026, 3, 2, 12)
    grace = timedelta(minutes=60)
    assert due_slot(daily, last=None, now=slot - timedelta(minutes=1), grace=grace) is None
    assert due_slot(daily, last=None, now=slot, grace=grace) == slot
    # Down from 11:50 to 12:40: the 12:00 run happens when the scheduler is back.
    assert due_slot(daily, last=slot - 24 * HOUR, now=slot + timedelta(minutes=40), grace=grace) == slot
    # ...but once only: after it was handled, nothing is due until tomorrow.
    assert due_slot(daily, last=slot, now=slot + timedelta(minutes=41), grace=grace) is None
    # Down until 13:30: beyond the grace time, that run is skipped.
    assert due_slot(daily, last=slot - 24 * HOUR, now=slot + 90 * timedelta(minutes=1), grace=grace) is None


def test_several_missed_runs_are_coalesced_into_the_latest() -> None:
    hourly = Schedule("0 * * * *", "Europe/Madrid")
    back = utc(2026, 3, 2, 15, 10)
    assert due_slot(hourly, last=utc(2026, 3, 2, 9), now=back, grace=timedelta(hours=4)) == utc(2026, 3, 2, 15)


def test_slot_ids_are_utc_iso_whatever_the_zone() -> None:
    instant = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo("America/Bogota"))
    assert slot_id(instant) == "2026-03-02T12:00:00+00:00"
    assert parse_slot(slot_id(instant)) == instant
    assert parse_slot("manual-2026-03-02T12:00:00+00:00") is None


@pytest.mark.parametrize("cron, expected", [
    ("0 7 * * 1-5", ["mon", "tue", "wed", "thu", "fri"]),
    ("0 7 * * 0", ["sun"]),
    ("0 7 * * 7", ["sun"]),
    ("0 7 * * 5-7", ["sun", "fri", "sat"]),
    ("0 7 * * 1,3,5", ["mon", "wed", "fri"]),
    ("0 7 * * */2", ["sun", "tue", "thu", "sat"]),
    ("0 7 * * mon-fri", ["mon", "tue", "wed", "thu", "fri"]),
])
def test_days_of_the_week_count_from_sunday_as_in_standard_cron(cron: str, expected: list[str]) -> None:
    schedule = Schedule(cron, "UTC")
    start = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)  # a Sunday
    fired = {due.strftime("%a").lower() for due in schedule.between(start, start + timedelta(days=7))}
    assert sorted(fired, key=["sun", "mon", "tue", "wed", "thu", "fri", "sat"].index) == expected
