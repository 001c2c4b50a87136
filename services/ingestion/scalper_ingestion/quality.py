"""Data quality for bar batches: split a batch into clean bars and quarantined bars with a reason.

Pure and total: :func:`validate` never raises on bad data. Each quarantined row carries the first
rule it broke (rules are checked in :data:`REASONS` order), so the counts per reason add up to the
quarantined rows. Exact duplicates inside a batch collapse to one row; rows sharing
``(symbol, start)`` with different values are all quarantined (nothing says which one is right).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from scalper_ingestion.sources.base import BAR_COLUMNS, PRICE_COLUMNS, conform_bars

logger = logging.getLogger(__name__)

MISSING_SYMBOL = "missing_symbol"
INVALID_SYMBOL = "invalid_symbol"
INVALID_TIMESTAMP = "invalid_timestamp"
NON_FINITE_PRICE = "non_finite_price"
NON_POSITIVE_PRICE = "non_positive_price"
HIGH_BELOW_LOW = "high_below_low"
OPEN_CLOSE_OUTSIDE_RANGE = "open_or_close_outside_high_low"
NOT_ON_MINUTE = "timestamp_not_on_minute"
NEGATIVE_VOLUME = "negative_volume"
NON_FINITE_VOLUME = "non_finite_volume"
INVALID_VWAP = "invalid_vwap"
NEGATIVE_TRADE_COUNT = "negative_trade_count"
OFF_CALENDAR = "off_calendar"
CONFLICTING_DUPLICATE = "conflicting_duplicate"

REASONS: tuple[str, ...] = (
    MISSING_SYMBOL, INVALID_SYMBOL, INVALID_TIMESTAMP, NON_FINITE_PRICE, NON_POSITIVE_PRICE, HIGH_BELOW_LOW,
    OPEN_CLOSE_OUTSIDE_RANGE, NOT_ON_MINUTE, NEGATIVE_VOLUME, NON_FINITE_VOLUME, INVALID_VWAP,
    NEGATIVE_TRADE_COUNT, OFF_CALENDAR, CONFLICTING_DUPLICATE,
)
KEY = ["symbol", "start"]
SYMBOL_PATTERN = r"^[A-Z0-9:.]{1,16}$"  # the wire schema's Symbol (scalper_shared.schema.messages)


def _row_rules(bars: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(reason, broken-mask) per row-level rule, in priority order."""
    prices = bars[list(PRICE_COLUMNS)]
    volume, vwap = bars["volume"], bars["vwap"]
    symbol = bars["symbol"]
    starts = bars["start"]
    return [
        (MISSING_SYMBOL, symbol.isna() | (symbol.astype(str).str.strip() == "")),
        (INVALID_SYMBOL, ~symbol.astype(str).str.fullmatch(SYMBOL_PATTERN)),
        (INVALID_TIMESTAMP, starts.isna()),
        (NON_FINITE_PRICE, ~np.isfinite(prices).all(axis=1)),
        (NON_POSITIVE_PRICE, (prices <= 0).any(axis=1)),
        (HIGH_BELOW_LOW, bars["high"] < bars["low"]),
        (OPEN_CLOSE_OUTSIDE_RANGE, (bars["open"] < bars["low"]) | (bars["open"] > bars["high"])
         | (bars["close"] < bars["low"]) | (bars["close"] > bars["high"])),
        (NOT_ON_MINUTE, starts.notna() & (starts != starts.dt.floor("min"))),
        (NEGATIVE_VOLUME, volume < 0),
        (NON_FINITE_VOLUME, np.isinf(volume)),
        (INVALID_VWAP, np.isinf(vwap) | (vwap <= 0)),
        (NEGATIVE_TRADE_COUNT, (bars["trade_count"] < 0).fillna(False).astype(bool)),
        (OFF_CALENDAR, bars["session"].isna()),
    ]


def _first_reasons(bars: pd.DataFrame) -> pd.Series:
    """The first broken rule of each row, or None for a row that passes them all."""
    reasons = pd.Series(None, index=bars.index, dtype=object)
    for reason, broken in _row_rules(bars):
        reasons = reasons.mask(reasons.isna() & broken.to_numpy(dtype=bool), reason)
    return reasons


def validate(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into ``(clean, quarantined)``.

    ``clean`` has :data:`BAR_COLUMNS`; ``quarantined`` has them plus ``reason``. Unparsable values
    (strings in price columns, bad times) are quarantined, never raised.
    """
    bars = conform_bars(frame)
    before = len(bars)
    bars = bars.drop_duplicates(keep="first").reset_index(drop=True)
    if len(bars) < before:
        logger.info("collapsed %s exact duplicate bars", before - len(bars))
    reasons = _first_reasons(bars)
    passing = reasons.isna()
    conflicting = passing & bars.duplicated(subset=KEY, keep=False)
    reasons = reasons.mask(conflicting, CONFLICTING_DUPLICATE)
    clean = bars[reasons.isna()].reset_index(drop=True)
    quarantined = bars[reasons.notna()].assign(reason=reasons[reasons.notna()]).reset_index(drop=True)
    if len(quarantined):
        logger.warning("quarantined %s of %s bars: %s", len(quarantined), len(bars), reason_counts(quarantined))
    return clean, quarantined


def reason_counts(quarantined: pd.DataFrame) -> dict[str, int]:
    """How many quarantined rows per reason."""
    if quarantined.empty:
        return {}
    return {str(reason): int(count) for reason, count in quarantined["reason"].value_counts().items()}


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no rows."""
    return pd.DataFrame({column: [] for column in (*BAR_COLUMNS, "reason")})
