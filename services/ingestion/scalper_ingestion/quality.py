"""Data quality for bar batches: split a batch into clean bars and quarantined bars with a reason.

Pure and total: :func:`validate` never raises on bad data. Each quarantined row carries the first
rule it broke (rules are checked in :data:`REASONS` order), so the counts per reason add up to the
quarantined rows. Exact duplicates inside a batch collapse to one row; rows sharing
``(symbol, start)`` with different values are all quarantined (nothing says which one is right).

Beyond shape, :class:`QualityRules` holds plausibility (issue #15): a bar starting later than the
injected clock plus one minute, or before the earliest date, is refused (a 2075 bar would otherwise
become the newest market time everywhere); prices, volumes and trade counts above absurd ceilings are
refused; and a bar whose open or close leaves the median close of its neighbours by more than
``spike_atr_multiple`` times their median high-low range (the ATR) is a spike. The spike rule needs
``spike_min_bars`` bars of the symbol in the batch (files and backfills; single live bars skip it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

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
FUTURE_TIMESTAMP = "timestamp_in_future"
BEFORE_EARLIEST = "timestamp_before_earliest"
ABSURD_PRICE = "absurd_price"
PRICE_SPIKE = "price_spike"
ABSURD_VOLUME = "absurd_volume"
ABSURD_TRADE_COUNT = "absurd_trade_count"

REASONS: tuple[str, ...] = (
    MISSING_SYMBOL, INVALID_SYMBOL, INVALID_TIMESTAMP, FUTURE_TIMESTAMP, BEFORE_EARLIEST, NON_FINITE_PRICE,
    NON_POSITIVE_PRICE, ABSURD_PRICE, HIGH_BELOW_LOW, OPEN_CLOSE_OUTSIDE_RANGE, NOT_ON_MINUTE, NEGATIVE_VOLUME,
    NON_FINITE_VOLUME, ABSURD_VOLUME, INVALID_VWAP, NEGATIVE_TRADE_COUNT, ABSURD_TRADE_COUNT, OFF_CALENDAR,
    PRICE_SPIKE, CONFLICTING_DUPLICATE,
)
KEY = ["symbol", "start"]
SYMBOL_PATTERN = r"^[A-Z0-9:.]{1,16}$"  # the wire schema's Symbol (scalper_shared.schema.messages)
OPTION_TICKER_PATTERN = r"^O:[A-Z]{1,6}\d{6}[CP]\d{8}$"  # Polygon's option tickers: O: + OCC symbol


@dataclass(frozen=True, slots=True)
class QualityRules:
    """The plausibility limits of :func:`validate` (settings ``INGESTION_*``, see ``.env.example``).

    ``now`` None means the system clock at validation time; writers pass their injected clock's time.
    """

    now: datetime | None = None
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    future_allowance: timedelta = timedelta(minutes=1)
    max_price: float = 1_000_000.0
    max_volume: float = 1e10
    max_trade_count: int = 1_000_000_000
    spike_atr_multiple: float = 100.0
    spike_window: int = 31
    spike_min_bars: int = 5
    symbol_pattern: str = SYMBOL_PATTERN
    """What a valid ``symbol`` looks like (option bars use :data:`OPTION_TICKER_PATTERN`)."""

    def at(self, now: datetime) -> QualityRules:
        """These rules with the clock reading ``now``."""
        return replace(self, now=now)


DEFAULT_RULES = QualityRules()


def _spikes(bars: pd.DataFrame, rules: QualityRules) -> pd.Series:
    """True where a bar's open or close lies more than ``spike_atr_multiple`` median ranges away from the
    median close of the ``spike_window`` bars of its symbol around it (robust: one spike moves neither
    median). The range has a floor of 0.01% of the price, so flat series (indices) are not hair-triggers."""
    out = pd.Series(False, index=bars.index)
    finite = np.isfinite(bars[list(PRICE_COLUMNS)]).all(axis=1) & bars["start"].notna()
    for _, group in bars[finite].sort_values("start", kind="stable").groupby("symbol", sort=False):
        if len(group) < rules.spike_min_bars:
            continue
        window = group.rolling(rules.spike_window, center=True, min_periods=rules.spike_min_bars)
        centre = window["close"].median()
        atr = (group["high"] - group["low"]).rolling(rules.spike_window, center=True,
                                                       min_periods=rules.spike_min_bars).median()
        atr = np.maximum(atr, centre.abs() * 1e-4)
        reach = np.maximum((group["open"] - centre).abs(), (group["close"] - centre).abs())
        out.loc[group.index] = (reach > rules.spike_atr_multiple * atr).fillna(False).to_numpy(dtype=bool)
    return out


def _row_rules(bars: pd.DataFrame, rules: QualityRules) -> list[tuple[str, pd.Series]]:
    """(reason, broken-mask) per row-level rule, in priority order."""
    prices = bars[list(PRICE_COLUMNS)]
    volume, vwap = bars["volume"], bars["vwap"]
    symbol = bars["symbol"]
    starts = bars["start"]
    now = rules.now or datetime.now(UTC)
    counts = bars["trade_count"].astype("Float64")
    return [
        (MISSING_SYMBOL, symbol.isna() | (symbol.astype(str).str.strip() == "")),
        (INVALID_SYMBOL, ~symbol.astype(str).str.fullmatch(rules.symbol_pattern)),
        (INVALID_TIMESTAMP, starts.isna()),
        (FUTURE_TIMESTAMP, (starts > pd.Timestamp(now + rules.future_allowance)).fillna(False)),
        (BEFORE_EARLIEST, (starts < pd.Timestamp(rules.earliest)).fillna(False)),
        (NON_FINITE_PRICE, ~np.isfinite(prices).all(axis=1)),
        (NON_POSITIVE_PRICE, (prices <= 0).any(axis=1)),
        (ABSURD_PRICE, (prices > rules.max_price).any(axis=1)),
        (HIGH_BELOW_LOW, bars["high"] < bars["low"]),
        (OPEN_CLOSE_OUTSIDE_RANGE, (bars["open"] < bars["low"]) | (bars["open"] > bars["high"])
         | (bars["close"] < bars["low"]) | (bars["close"] > bars["high"])),
        (NOT_ON_MINUTE, starts.notna() & (starts != starts.dt.floor("min"))),
        (NEGATIVE_VOLUME, volume < 0),
        (NON_FINITE_VOLUME, np.isinf(volume)),
        (ABSURD_VOLUME, volume > rules.max_volume),
        (INVALID_VWAP, np.isinf(vwap) | (vwap <= 0) | (vwap > rules.max_price)),
        (NEGATIVE_TRADE_COUNT, (counts < 0).fillna(False).astype(bool)),
        (ABSURD_TRADE_COUNT, (counts > rules.max_trade_count).fillna(False).astype(bool)),
        (OFF_CALENDAR, bars["session"].isna()),
        (PRICE_SPIKE, _spikes(bars, rules)),
    ]


def _first_reasons(bars: pd.DataFrame, rules: QualityRules) -> pd.Series:
    """The first broken rule of each row, or None for a row that passes them all."""
    reasons = pd.Series(None, index=bars.index, dtype=object)
    for reason, broken in _row_rules(bars, rules):
        reasons = reasons.mask(reasons.isna() & broken.to_numpy(dtype=bool), reason)
    return reasons


def validate(frame: pd.DataFrame, rules: QualityRules = DEFAULT_RULES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into ``(clean, quarantined)``.

    ``clean`` has :data:`BAR_COLUMNS`; ``quarantined`` has them plus ``reason``. Unparsable values
    (strings in price columns, bad times) are quarantined, never raised.
    """
    bars = conform_bars(frame)
    before = len(bars)
    bars = bars.drop_duplicates(keep="first").reset_index(drop=True)
    if len(bars) < before:
        logger.info("collapsed %s exact duplicate bars", before - len(bars))
    reasons = _first_reasons(bars, rules)
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
