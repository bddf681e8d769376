"""When a scheduled job runs and which period a scheduled report covers, on the centre's local
clock (docs/reports.md "Scheduled reports"). Sans-IO: every function takes `now` and the zone.

- A run is at a local time of day (hour, minute) on the days a schedule matches: every day, one
  weekday, or one day of the month. A local time missing on a DST day is where the zone puts it
  (02:30 on a spring-forward day is 03:30 summer time); a repeated one is its first occurrence.
- A run reports the last period closed before its day: daily the day before, weekly the Monday
  to Monday week before, monthly the month before (a weekly run on a Wednesday still reports the
  whole week that ended on Monday)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

EVERY = ("day", "week", "month")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_LOOK_DAYS = 64  # a month and its neighbour: every schedule matches at least once within it


@dataclass(frozen=True)
class Period:
    """A closed period [start, end) of local days, named by its first day (`2026-11-30`)."""

    start: date
    end: date

    @property
    def name(self) -> str:
        return self.start.isoformat()

    def bounds(self, tz: ZoneInfo) -> tuple[float, float]:
        """Epoch seconds of the local midnights that open and close it."""
        return _midnight(self.start, tz), _midnight(self.end, tz)


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _at(day: date, run_at: tuple[int, int], tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, run_at[0], run_at[1], tzinfo=tz).timestamp()


def next_on(now: float, run_at: tuple[int, int], tz: ZoneInfo, matches: Callable[[date], bool]) -> float:
    """The first `run_at` local time strictly after `now` on a day that `matches`."""
    today = datetime.fromtimestamp(now, tz).date()
    for days in range(-1, _LOOK_DAYS):  # -1: a repeated hour can put "today" a day ahead in UTC terms
        day = today + timedelta(days=days)
        if matches(day) and (at := _at(day, run_at, tz)) > now:
            return at
    raise ValueError("no matching day within two months")


def last_on(
    now: float, run_at: tuple[int, int], tz: ZoneInfo, matches: Callable[[date], bool]
) -> float | None:
    """The latest `run_at` local time at or before `now` on a day that `matches` (None: none in
    the last two months)."""
    today = datetime.fromtimestamp(now, tz).date()
    for days in range(-1, _LOOK_DAYS):
        day = today - timedelta(days=days)
        if matches(day) and (at := _at(day, run_at, tz)) <= now:
            return at
    return None


def next_run(now: float, run_at: tuple[int, int], tz: ZoneInfo) -> float:
    """The next `run_at` (hour, minute) local time strictly after `now`, every day (the privacy job)."""
    return next_on(now, run_at, tz, lambda _day: True)


def period_start(day: date, every: str) -> date:
    """The first day of the period of kind `every` that holds `day`."""
    if every == "day":
        return day
    if every == "week":
        return day - timedelta(days=day.weekday())
    if every == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown period {every!r}; known: {', '.join(EVERY)}")


def period_of(day: date, every: str) -> Period:
    """The period of kind `every` that holds `day`."""
    start = period_start(day, every)
    if every == "day":
        return Period(start, start + timedelta(days=1))
    if every == "week":
        return Period(start, start + timedelta(days=7))
    nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return Period(start, nxt)


def period_before(day: date, every: str) -> Period:
    """The last period of kind `every` closed by `day` (what a run on `day` reports)."""
    return period_of(period_start(day, every) - timedelta(days=1), every)


@dataclass(frozen=True)
class When:
    """A schedule's run days: `every` day, on `weekday` (0 Monday) or on the `day`th of the month."""

    every: str
    run_at: tuple[int, int] = (8, 0)
    weekday: int = 0
    day: int = 1

    def matches(self, day: date) -> bool:
        if self.every == "week":
            return day.weekday() == self.weekday
        if self.every == "month":
            return day.day == self.day
        return True

    def next_due(self, now: float, tz: ZoneInfo) -> float:
        return next_on(now, self.run_at, tz, self.matches)

    def last_due(self, now: float, tz: ZoneInfo) -> float | None:
        return last_on(now, self.run_at, tz, self.matches)

    def period_at(self, run: float, tz: ZoneInfo) -> Period:
        """The period a run at `run` reports."""
        return period_before(datetime.fromtimestamp(run, tz).date(), self.every)
