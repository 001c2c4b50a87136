"""Helpers of the feature tests: the real bar files, cut to a few sessions to keep tests fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalper_shared.core.calendar import NEW_YORK
from scalper_shared.core.features import BarArrays

FILES = {
    "SPY_JUL": "SPY_1m_2025-07.csv.gz",
    "SPY": "SPY_1m_2025-08_2025-10.csv.gz",
    "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz",
}


def load(shared_data: Path, key: str) -> BarArrays:
    return BarArrays.from_csv(shared_data / FILES[key])


def first_days(bars: BarArrays, n_days: int) -> BarArrays:
    """The bars of the first ``n_days`` New York dates (all hours)."""
    import pandas as pd

    days = pd.to_datetime(bars.t, unit="ms", utc=True).tz_convert(NEW_YORK).normalize()
    wanted = np.unique(days)[:n_days]
    return bars.take(np.flatnonzero(np.isin(days, wanted)))
