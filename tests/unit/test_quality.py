"""Data-quality rules: each bad bar is quarantined with its reason, good bars pass, nothing raises."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalper_ingestion import quality
from scalper_ingestion.quality import reason_counts, validate
from scalper_ingestion.sources.base import BAR_COLUMNS

START = pd.Timestamp("2025-07-01 14:00", tz="UTC")  # 10:00 ET, a regular session


def _bar(minute: int = 0, **overrides) -> dict:
    bar = {"symbol": "SPY", "start": START + pd.Timedelta(minutes=minute), "open": 620.0, "high": 620.5,
           "low": 619.5, "close": 620.2, "volume": 1000.0, "vwap": 620.1, "trade_count": 12,
           "session": "regular", "source": "test"}
    bar.update(overrides)
    return bar


def _frame(*bars: dict) -> pd.DataFrame:
    return pd.DataFrame(list(bars))


def test_good_bars_pass_untouched():
    clean, quarantined = validate(_frame(_bar(0), _bar(1), _bar(2, symbol="I:SPX", volume=np.nan, vwap=np.nan,
                                                                 trade_count=None)))
    assert len(clean) == 3 and quarantined.empty
    assert list(clean.columns) == list(BAR_COLUMNS)
    assert math.isnan(clean["volume"].iloc[2])


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"open": np.nan}, quality.NON_FINITE_PRICE),
    ({"close": np.inf}, quality.NON_FINITE_PRICE),
    ({"high": -np.inf}, quality.NON_FINITE_PRICE),
    ({"low": 0.0, "open": 0.0}, quality.NON_POSITIVE_PRICE),
    ({"low": -1.0}, quality.NON_POSITIVE_PRICE),
    ({"high": 619.0, "low": 621.0, "open": 620.0, "close": 620.0}, quality.HIGH_BELOW_LOW),
    ({"open": 621.0}, quality.OPEN_CLOSE_OUTSIDE_RANGE),
    ({"close": 619.0}, quality.OPEN_CLOSE_OUTSIDE_RANGE),
    ({"start": START + pd.Timedelta(seconds=30)}, quality.NOT_ON_MINUTE),
    ({"start": START + pd.Timedelta(milliseconds=1)}, quality.NOT_ON_MINUTE),
    ({"volume": -5.0}, quality.NEGATIVE_VOLUME),
    ({"volume": np.inf}, quality.NON_FINITE_VOLUME),
    ({"vwap": 0.0}, quality.INVALID_VWAP),
    ({"trade_count": -1}, quality.NEGATIVE_TRADE_COUNT),
    ({"session": None}, quality.OFF_CALENDAR),
    ({"symbol": None}, quality.MISSING_SYMBOL),
    ({"start": None}, quality.INVALID_TIMESTAMP),
    ({"open": "n/a"}, quality.NON_FINITE_PRICE),
])
def test_each_rule_quarantines_the_bad_bar_with_its_reason(overrides, reason):
    clean, quarantined = validate(_frame(_bar(0), _bar(1, **overrides), _bar(2)))
    assert len(clean) == 2 and clean["start"].tolist() == [START, START + pd.Timedelta(minutes=2)]
    assert quarantined["reason"].tolist() == [reason]
    assert reason_counts(quarantined) == {reason: 1}


def test_exact_duplicates_collapse_to_one_bar():
    clean, quarantined = validate(_frame(_bar(0), _bar(0), _bar(0), _bar(1)))
    assert len(clean) == 2 and quarantined.empty


def test_conflicting_duplicates_are_all_quarantined():
    clean, quarantined = validate(_frame(_bar(0), _bar(1, close=620.3), _bar(1, close=620.4), _bar(2)))
    assert len(clean) == 2
    assert quarantined["reason"].tolist() == [quality.CONFLICTING_DUPLICATE] * 2
    assert sorted(quarantined["close"]) == [620.3, 620.4]


def test_same_minute_for_different_symbols_is_not_a_duplicate():
    clean, quarantined = validate(_frame(_bar(0), _bar(0, symbol="QQQ")))
    assert len(clean) == 2 and quarantined.empty


def test_counts_per_reason_add_up_and_nothing_is_lost():
    bars = [_bar(i) for i in range(10)]
    bars[1]["open"] = np.nan
    bars[2]["volume"] = -1.0
    bars[3]["volume"] = -2.0
    bars[4]["session"] = None
    clean, quarantined = validate(_frame(*bars))
    assert reason_counts(quarantined) == {quality.NEGATIVE_VOLUME: 2, quality.NON_FINITE_PRICE: 1,
                                          quality.OFF_CALENDAR: 1}
    assert len(clean) + len(quarantined) == 10


def test_garbage_never_raises():
    garbage = pd.DataFrame({"symbol": [None, 3, "SPY"], "start": ["not a time", 12, None],
                            "open": ["x", None, object()], "high": [1, 2, 3]})
    clean, quarantined = validate(garbage)
    assert clean.empty and len(quarantined) == 3
    assert validate(pd.DataFrame())[0].empty


def test_empty_batch_is_fine():
    clean, quarantined = validate(pd.DataFrame(columns=list(BAR_COLUMNS)))
    assert clean.empty and quarantined.empty and reason_counts(quarantined) == {}
