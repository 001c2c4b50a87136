"""The common shape of every bar source.

A source is an iterator of bar batches. A batch is a ``pandas.DataFrame`` with exactly
:data:`BAR_COLUMNS`:

- ``symbol`` (str), ``start`` (bar's opening minute, ``datetime64[ns, UTC]``),
- ``open``, ``high``, ``low``, ``close`` (float64),
- ``volume``, ``vwap`` (float64; NaN where the feed has none, e.g. indices: never 0),
- ``trade_count`` (nullable ``Int64``),
- ``session`` (``"pre"`` / ``"regular"`` / ``"post"``, or None for a bar outside 04:00-20:00 ET or
  on a closed day; :func:`scalper_ingestion.quality.validate` quarantines those),
- ``source`` (str, where the bar came from).

Batches are unvalidated: run them through :func:`scalper_ingestion.quality.validate` before storing.
The synthetic market yields one batch per session-day, files one per chunk, Polygon REST one per
symbol-day, the websocket one per received message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from scalper_shared.core.calendar import session_codes
from scalper_shared.core.features.availability import is_index

BAR_COLUMNS: tuple[str, ...] = (
    "symbol", "start", "open", "high", "low", "close", "volume", "vwap", "trade_count", "session", "source",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
MAX_EPOCH_MS = 9.2e15
"""Epoch milliseconds beyond this fall outside pandas' nanosecond range: NaT (quarantined), never an error."""

# Polygon aggregate field -> bar column (REST results, flat files and websocket AM events share these).
POLYGON_FIELDS: dict[str, str] = {
    "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "vw": "vwap", "n": "trade_count",
}


@runtime_checkable
class BarSource(Protocol):
    """Anything that yields batches of bars in the :data:`BAR_COLUMNS` shape."""

    def batches(self) -> Iterator[pd.DataFrame]:
        """Bar batches, oldest first; finite for history, endless for live feeds."""
        ...


def empty_bars() -> pd.DataFrame:
    """A batch with no rows and the right dtypes."""
    return conform_bars(pd.DataFrame({column: [] for column in BAR_COLUMNS}))


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly :data:`BAR_COLUMNS` in order and the canonical dtypes.

    Missing optional columns (volume, vwap, trade_count, session, source) become nulls; unparsable
    prices become NaN, unparsable volumes and VWAPs +inf and unparsable trade counts -1, and unparsable
    times NaT, so validation quarantines them (a volume of "abc" must not read as "no volume").
    """
    out = pd.DataFrame(index=frame.index)
    out["symbol"] = frame["symbol"].astype(object) if "symbol" in frame else None
    starts = pd.to_datetime(frame["start"], utc=True, errors="coerce", format="mixed") if "start" in frame \
        else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    out["start"] = starts.astype("datetime64[ns, UTC]")
    for column in (*PRICE_COLUMNS, "volume", "vwap"):
        out[column] = _numbers(frame[column]).astype("float64") if column in frame else np.nan
    for column in ("volume", "vwap"):  # text where a number belongs is refused, never read as "none"
        out[column] = out[column].mask(_unparsable(frame, column), np.inf)
    counts = _numbers(frame["trade_count"]) if "trade_count" in frame else pd.Series(np.nan, index=frame.index)
    counts = counts.mask(_unparsable(frame, "trade_count"), -1)  # quarantined as negative_trade_count
    out["trade_count"] = counts.round().astype("Int64")
    out["session"] = frame["session"].astype(object).where(frame["session"].notna(), None) \
        if "session" in frame else None
    out["source"] = frame["source"].astype(object) if "source" in frame else None
    return out.reset_index(drop=True)


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def _unparsable(frame: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose ``column`` holds something (not null) that is not a number, such as ``"abc"``."""
    if column not in frame:
        return pd.Series(False, index=frame.index)
    values = frame[column]
    return pd.Series(values.notna().to_numpy() & _numbers(values).isna().to_numpy(), index=frame.index)


_SESSION_LABELS = np.array([None, "pre", "regular", "post"], dtype=object)  # by calendar session code


def label_sessions(starts: pd.Series) -> list[str | None]:
    """The session of each bar start via the market calendar; None off-calendar or for NaT."""
    valid = starts.notna().to_numpy()
    codes = np.zeros(len(starts), dtype=np.int8)
    if valid.any():
        codes[valid] = session_codes(pd.DatetimeIndex(starts[valid]))
    labels: list[str | None] = _SESSION_LABELS[codes].tolist()
    return labels


def from_polygon_aggs(raw: pd.DataFrame, symbol: str, source: str) -> pd.DataFrame:
    """Polygon aggregates (``t`` = bar start in epoch ms UTC, ``o,h,l,c[,v,vw,n]``) as a bar batch.

    Index tickers get NaN volume and VWAP whatever the feed sent: a zero would read as "no trading".
    """
    frame = raw.rename(columns=POLYGON_FIELDS)
    frame = frame.assign(
        symbol=symbol,
        start=pd.to_datetime(pd.to_numeric(raw["t"], errors="coerce").where(lambda t: t.abs() < MAX_EPOCH_MS),
                             unit="ms", utc=True)
        if "t" in raw else pd.NaT,
        source=source,
    )
    if is_index(symbol):
        frame = frame.assign(volume=np.nan, vwap=np.nan, trade_count=np.nan)
    bars = conform_bars(frame)
    bars["session"] = pd.Series(label_sessions(bars["start"]), dtype=object)
    return bars
