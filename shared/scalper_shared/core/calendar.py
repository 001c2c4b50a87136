"""The NYSE trading calendar: sessions, early closes and extended hours, always time-zone aware.

Regular hours come from ``pandas-market-calendars`` (holidays and early closes included).
Extended hours are 04:00 ET to the open (pre) and the close to 20:00 ET (post; 17:00 ET on
early-close days). Everything returned is UTC unless a name says ``_et``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from scalper_shared.core.enums import Session

NEW_YORK = ZoneInfo("America/New_York")
PRE_MARKET_OPEN_ET = time(4, 0)
POST_MARKET_CLOSE_ET = time(20, 0)
EARLY_CLOSE_POST_MARKET_CLOSE_ET = time(17, 0)
REGULAR_CLOSE_ET = time(16, 0)


@dataclass(frozen=True, slots=True)
class TradingDay:
    """One NYSE session. ``regular_minutes`` counts the 1-minute bars of regular hours."""

    day: date
    pre_open: datetime
    open: datetime
    close: datetime
    post_close: datetime

    @property
    def early_close(self) -> bool:
        return self.close.astimezone(NEW_YORK).time() < REGULAR_CLOSE_ET

    @property
    def regular_minutes(self) -> int:
        return int((self.close - self.open).total_seconds() // 60)

    def session_of(self, bar_start: datetime) -> Session | None:
        """The session a bar starting at ``bar_start`` belongs to, or None outside 04:00-20:00 ET."""
        if self.open <= bar_start < self.close:
            return Session.REGULAR
        if self.pre_open <= bar_start < self.open:
            return Session.PRE
        if self.close <= bar_start < self.post_close:
            return Session.POST
        return None


@lru_cache(maxsize=64)
def _schedule(year: int) -> dict[date, tuple[datetime, datetime]]:
    import pandas_market_calendars as mcal

    nyse = mcal.get_calendar("NYSE")
    frame = nyse.schedule(start_date=f"{year}-01-01", end_date=f"{year}-12-31")
    return {
        ts.date(): (row.market_open.to_pydatetime().astimezone(UTC),
                    row.market_close.to_pydatetime().astimezone(UTC))
        for ts, row in frame.iterrows()
    }


def _at_et(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=NEW_YORK).astimezone(UTC)


def trading_day(day: date) -> TradingDay | None:
    """The session on ``day``, or None for a weekend or holiday."""
    times = _schedule(day.year).get(day)
    if times is None:
        return None
    open_utc, close_utc = times
    post = EARLY_CLOSE_POST_MARKET_CLOSE_ET if close_utc.astimezone(NEW_YORK).time() < REGULAR_CLOSE_ET \
        else POST_MARKET_CLOSE_ET
    return TradingDay(day, _at_et(day, PRE_MARKET_OPEN_ET), open_utc, close_utc, _at_et(day, post))


def trading_days(start: date, end: date) -> list[TradingDay]:
    """Every session from ``start`` to ``end`` inclusive."""
    days = []
    current = start
    while current <= end:
        session = trading_day(current)
        if session is not None:
            days.append(session)
        current += timedelta(days=1)
    return days


def session_date(ts: datetime) -> date:
    """The New York calendar date of a UTC timestamp."""
    return ts.astimezone(NEW_YORK).date()


def classify(bar_start: datetime) -> Session | None:
    """The session of a bar start (UTC, aware), or None on a closed day / outside hours."""
    if bar_start.tzinfo is None:
        raise ValueError("bar_start must be timezone-aware")
    session = trading_day(session_date(bar_start))
    return None if session is None else session.session_of(bar_start)


def classify_many(starts: pd.DatetimeIndex) -> list[Session | None]:
    """Vectorised :func:`classify` for a UTC ``DatetimeIndex`` (bulk file imports)."""
    if starts.tz is None:
        raise ValueError("starts must be timezone-aware")
    return [_CODE_TO_SESSION[int(code)] for code in session_codes(starts)]


_CODE_TO_SESSION: dict[int, Session | None] = {0: None, 1: Session.PRE, 2: Session.REGULAR, 3: Session.POST}


def session_codes(starts: pd.DatetimeIndex) -> np.ndarray:
    """Session of each start as a code: 0 none, 1 pre, 2 regular, 3 post (one comparison per day)."""
    values = starts.tz_convert(UTC).as_unit("ns").asi8
    local_ns = starts.tz_convert(NEW_YORK).tz_localize(None).as_unit("ns").asi8
    day_numbers, inverse = np.unique(local_ns // _NS_PER_DAY, return_inverse=True)
    bounds = np.full((len(day_numbers), 4), np.iinfo(np.int64).max, dtype=np.int64)
    for i, day_number in enumerate(day_numbers):
        session = trading_day(_EPOCH + timedelta(days=int(day_number)))
        if session is not None:
            bounds[i] = [pd.Timestamp(b).value for b in
                         (session.pre_open, session.open, session.close, session.post_close)]
    row_bounds = bounds[inverse]
    codes = np.zeros(len(values), dtype=np.int8)
    for code in (1, 2, 3):
        inside = (values >= row_bounds[:, code - 1]) & (values < row_bounds[:, code])
        codes[inside] = code
    return codes


_NS_PER_DAY = 86_400 * 10**9
_EPOCH = date(1970, 1, 1)
