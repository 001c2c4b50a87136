"""Coverage of stored bars against the market calendar: expected regular minutes, present, missing runs.
:func:`coverage` is pure; :func:`stored_coverage` reads the bar starts from the ``bars`` table first.

An early close (2025-07-03: 210 regular minutes) expects 210 minutes, so it is not reported as
180 missing minutes; a holiday or weekend expects nothing and is not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, select

from scalper_shared.core.calendar import NEW_YORK, TradingDay, session_date, trading_days
from scalper_shared.db import bars

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class MissingRun:
    first: datetime
    last: datetime

    @property
    def minutes(self) -> int:
        return int((self.last - self.first) / MINUTE) + 1

    def __str__(self) -> str:
        first, last = (t.astimezone(NEW_YORK).strftime("%H:%M") for t in (self.first, self.last))
        return f"{first}-{last} ET ({self.minutes})" if self.minutes > 1 else f"{first} ET (1)"


@dataclass(frozen=True, slots=True)
class DayCoverage:
    day: TradingDay
    present: int
    extended_present: int
    missing_runs: tuple[MissingRun, ...]

    @property
    def expected(self) -> int:
        return self.day.regular_minutes

    @property
    def missing(self) -> int:
        return self.expected - self.present

    @property
    def complete(self) -> bool:
        return self.missing == 0


def coverage(bar_starts: Iterable[datetime], start: date, end: date) -> list[DayCoverage]:
    """Per session from ``start`` to ``end``: which regular minutes have a bar (UTC starts)."""
    by_day: dict[date, set[datetime]] = {}
    for ts in bar_starts:
        by_day.setdefault(session_date(ts), set()).add(ts)
    return [_day_coverage(day, by_day.get(day.day, set())) for day in trading_days(start, end)]


def _day_coverage(day: TradingDay, starts: set[datetime]) -> DayCoverage:
    regular = {ts for ts in starts if day.open <= ts < day.close}
    extended = sum(1 for ts in starts if day.pre_open <= ts < day.close or day.close <= ts < day.post_close) \
        - len(regular)
    runs: list[MissingRun] = []
    run_start: datetime | None = None
    minute = day.open
    while minute < day.close:
        if minute not in regular and run_start is None:
            run_start = minute
        elif minute in regular and run_start is not None:
            runs.append(MissingRun(run_start, minute - MINUTE))
            run_start = None
        minute += MINUTE
    if run_start is not None:
        runs.append(MissingRun(run_start, day.close - MINUTE))
    return DayCoverage(day, len(regular), extended, tuple(runs))


def stored_coverage(engine: Engine, symbol: str, first: date, last: date) -> list[DayCoverage]:
    """:func:`coverage` of the ``bars`` table's ``symbol`` bars on the New York dates ``first..last``."""
    lower = datetime.combine(first, datetime.min.time(), tzinfo=NEW_YORK)
    upper = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK)
    query = select(bars.c.start).where(bars.c.symbol == symbol, bars.c.start >= lower, bars.c.start < upper)
    with engine.connect() as connection:
        starts = list(connection.execute(query).scalars())
    return coverage(starts, first, last)
