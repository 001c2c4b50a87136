"""How bulk_upsert turns a DataFrame into COPY rows (no database needed)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from scalper_shared.db import bars
from scalper_shared.db.upsert import _batch


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": ["SPX", "SPY"],
        "start": pd.to_datetime(["2025-07-01 09:30", "2025-07-01 09:31"]).tz_localize("America/New_York"),
        "close": [6200.5, 617.1], "volume": [np.nan, 1200.0], "trade_count": [np.nan, 12.0],
    })


def test_aware_times_become_naive_utc_sent_as_timestamp() -> None:
    batch = _batch(bars, frame(), None)
    assert batch.values[0][1] == datetime(2025, 7, 1, 13, 30)
    assert batch.copy_types == {"start": "timestamp"}


def test_nan_becomes_none_and_float_counts_become_ints() -> None:
    batch = _batch(bars, frame(), None)
    assert batch.values[0][3:] == (None, None)
    assert batch.values[1][3:] == (1200.0, 12)
    assert type(batch.values[1][4]) is int


def test_naive_times_are_refused() -> None:
    naive = frame().assign(start=lambda f: f["start"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="column start holds naive datetimes"):
        _batch(bars, naive, None)


def test_mappings_default_to_the_first_rows_keys() -> None:
    batch = _batch(bars, [{"symbol": "SPY", "close": 1.0}, {"close": 2.0, "symbol": "QQQ"}], None)
    assert batch.names == ["symbol", "close"]
    assert batch.values == [("SPY", 1.0), ("QQQ", 2.0)]
