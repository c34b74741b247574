"""When an edition is due: its cron schedule read as wall-clock time in its timezone.

Pure functions of (schedule, timezone, times), so they are tested with any clock.
The cron fields are matched against the local wall clock, then each wall time becomes
one instant: a wall time that does not exist (skipped by a spring-forward change) runs
at the same distance past the change, e.g. 02:30 becomes 03:30 daylight time; a wall
time that happens twice (a fall-back change) runs at its first occurrence only.
So every scheduled local time gives exactly one run, whatever the zone does.

A slot is identified by its instant in UTC, in ISO form ("2026-03-09T12:00:00+00:00"),
so two schedulers on machines in different zones compute the same slot id.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from newsletter.config import EditionConfig

# Wider than any daylight-saving change, so a window of instants is covered by one of wall time.
_WALL_MARGIN = timedelta(hours=3)


# Standard cron numbers days of the week from Sunday (0 or 7); APScheduler's from_crontab counts
# from Monday, so "1-5" would fire Tuesday to Saturday. Numbers are spelled as names before it reads them.
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _standard_days(field: str) -> str:
    """A cron day-of-week field with standard numbering, as names APScheduler reads the same way."""
    if field == "*" or not any(c.isdigit() for c in field):
        return field
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            if not (low.isdigit() and high.isdigit()):
                return field  # names or a mix: APScheduler's own reading (and error) stands
            first, last = int(low), int(high)
        elif span.isdigit():
            first = last = int(span)
            if step_text:
                last = 6
        else:
            return field
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step > 0):
            raise ValueError(f"day-of-week {item!r} is out of range")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def cron_trigger(cron: str, tz: timezone | ZoneInfo = timezone.utc) -> CronTrigger:
    """A standard five-field cron expression (Sunday is 0 or 7) as an APScheduler trigger."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"expected five fields, got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_standard_days(day_of_week), timezone=tz)


def slot_id(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat()


def parse_slot(slot: str) -> datetime | None:
    """The instant of a scheduled slot id; None for a manual slot ("manual-...")."""
    try:
        return datetime.fromisoformat(slot).astimezone(timezone.utc)
    except ValueError:
        return None


class Schedule:
    """An edition's cron expression in its timezone."""

    def __init__(self, cron: str, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        # Matched against wall-clock times written as if they were UTC: no offsets, no DST.
        self._wall = cron_trigger(cron)

    @classmethod
    def of(cls, edition: EditionConfig) -> "Schedule":
        return cls(edition.schedule, edition.timezone)

    def _wall_times(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Matching wall times (naive-as-UTC) in [start, end]."""
        previous = None
        current = self._wall.get_next_fire_time(None, start)
        while current is not None and current <= end:
            yield current
            previous = current
            current = self._wall.get_next_fire_time(previous, previous + timedelta(microseconds=1))

    def _wall_of(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=timezone.utc)

    def _instant(self, wall: datetime) -> datetime:
        # fold=0: first occurrence of a repeated time; for a skipped time, the offset before
        # the change, which lands as far past the change as the wall time was past it.
        local = wall.replace(tzinfo=self.zone, fold=0)
        return local.astimezone(timezone.utc)

    def between(self, after: datetime, until: datetime) -> list[datetime]:
        """Every run instant in (after, until], oldest first, each once."""
        start = self._wall_of(after) - _WALL_MARGIN
        end = self._wall_of(until) + _WALL_MARGIN
        instants = {self._instant(w) for w in self._wall_times(start, end)}
        return sorted(t for t in instants if after < t <= until)

    def next_after(self, after: datetime) -> datetime | None:
        """The first run instant strictly after `after`."""
        window = timedelta(hours=2)
        # Dense schedules are found in a small window; sparse ones (yearly) by widening it.
        for _ in range(10):
            found = self.between(after, after + window)
            if found:
                return found[0]
            window *= 4
        return None


def due_slot(schedule: Schedule, *, last: datetime | None, now: datetime, grace: timedelta) -> datetime | None:
    """The slot to run now, if any: the latest run instant after `last`, at most `grace` ago.

    Runs missed further back than the grace time are skipped; several missed within it
    are coalesced into one (the latest), so a scheduler back from downtime sends once.
    """
    floor = now - grace
    if last is not None and last > floor:
        floor = last
    missed = schedule.between(floor, now)
    return missed[-1] if missed else None


class SlotTrigger(BaseTrigger):
    """An APScheduler trigger firing at an edition's run instants (cron's DST handling aside)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time if previous_fire_time is not None else now - timedelta(microseconds=1)
        return self.schedule.next_after(after)

    def __str__(self) -> str:
        return f"slots[{self.schedule.zone.key}]"
