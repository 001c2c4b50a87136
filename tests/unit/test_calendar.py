from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from scalper_shared.core.calendar import classify, classify_many, trading_day
from scalper_shared.schema import Session


def test_early_close_and_holiday() -> None:
    early = trading_day(date(2025, 7, 3))
    assert early is not None and early.early_close and early.regular_minutes == 210
    assert early.post_close == datetime(2025, 7, 3, 21, 0, tzinfo=UTC)  # 17:00 ET
    assert trading_day(date(2025, 7, 4)) is None


def test_daylight_saving_change_moves_the_open_in_utc() -> None:
    before, after = trading_day(date(2025, 10, 31)), trading_day(date(2025, 11, 3))
    assert before is not None and after is not None
    assert (before.open.hour, after.open.hour) == (13, 14)


def test_vectorised_classification_equals_the_scalar_one_across_dst() -> None:
    start = datetime(2025, 10, 30, 7, 0, tzinfo=UTC)
    starts = pd.DatetimeIndex([start + timedelta(minutes=7 * i) for i in range(1400)])
    assert classify_many(starts) == [classify(ts) for ts in starts.to_pydatetime()]
    assert {Session.PRE, Session.REGULAR, Session.POST, None} <= set(classify_many(starts))
