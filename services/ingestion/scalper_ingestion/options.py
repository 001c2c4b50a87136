"""Real option minute bars from Polygon: the same-day contracts near the money -> ``option_bars``.

``scalper ingest options --underlying SPY --from D --to D --strikes-around N``: for each trading
day, the underlying's regular-session low and high (its minute aggregates, cached like every
backfill), the contracts expiring that day from the options contracts reference endpoint
(``/v3/reference/options/contracts``, ``as_of`` the day), the strikes from the N-th below the
low to the N-th above the high on both rights, then each contract's minute aggregates
(``list_aggs`` on its ``O:`` ticker). Every request goes through the same rate limit, retries and
download cache as the bars backfill; bars are validated (invalid ones go to ``bars_quarantine``)
and upserted on ``(ticker, start)``, so a re-run changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from scalper_ingestion.quality import OPTION_TICKER_PATTERN, QualityRules, reason_counts, validate
from scalper_ingestion.sources.base import from_polygon_aggs
from scalper_ingestion.sources.polygon_rest import PolygonRestSource
from scalper_ingestion.writer import WriteResult, store_quarantined
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.core.calendar import NEW_YORK, TradingDay, trading_days
from scalper_shared.core.occ import OCC_ROOTS, parse_polygon_option
from scalper_shared.core.premium import normalise_symbol
from scalper_shared.db import bulk_upsert
from scalper_shared.db.models import bars, option_bars
from scalper_shared.schema.messages import OptionRight

logger = logging.getLogger(__name__)

SOURCE_NAME = "polygon_options"
OPTION_BAR_COLUMNS = ("ticker", "start", "underlying", "expiry", "option_right", "strike", "open", "high", "low",
                      "close", "volume", "vwap", "trade_count", "source")
STRIKE_SEARCH_MARGIN = 0.10
"""The reference query asks for strikes within 10% of the day's range (the choice is made here)."""


@dataclass(frozen=True, slots=True)
class OptionContract:
    ticker: str
    """Polygon's ticker: ``O:`` + OCC symbol."""
    underlying: str
    """The bars-table symbol it was chosen for (``SPY``, ``I:SPX``)."""
    expiry: date
    right: OptionRight
    strike: float


def options_underlying(symbol: str) -> str:
    """The options reference endpoint's ``underlying_ticker``: ``I:SPX`` -> ``SPX``."""
    return normalise_symbol(symbol)


def contracts_from_reference(results: Iterable[Any], underlying: str, expiry: date) -> list[OptionContract]:
    """Contracts of the reference endpoint's results that expire on ``expiry`` with the symbol's
    same-day root (SPXW for SPX, the symbol itself otherwise); anything unparsable is skipped."""
    root = OCC_ROOTS.get(options_underlying(underlying), options_underlying(underlying))
    out = []
    for result in results:
        try:
            parts = parse_polygon_option(str(result.ticker))
        except ValueError:
            logger.warning("skipping option contract with ticker %r", getattr(result, "ticker", None))
            continue
        if parts.root == root and parts.expiry == expiry:
            out.append(OptionContract(str(result.ticker), underlying, parts.expiry, parts.right, parts.strike))
    return out


def contracts_near_money(contracts: Iterable[OptionContract], low: float, high: float,
                         strikes_around: int) -> list[OptionContract]:
    """Calls and puts on every listed strike inside ``low..high`` plus ``strikes_around`` listed strikes
    below ``low`` and above ``high`` (the money over the whole day, with a margin of N strikes)."""
    if strikes_around < 0:
        raise ValueError(f"strikes_around must be >= 0, got {strikes_around}")
    pool = list(contracts)
    strikes = sorted({c.strike for c in pool})
    below = [s for s in strikes if s < low]
    above = [s for s in strikes if s > high]
    chosen = {s for s in strikes if low <= s <= high}
    chosen.update(below[len(below) - strikes_around:] if strikes_around else [])
    chosen.update(above[:strikes_around])
    return sorted((c for c in pool if c.strike in chosen), key=lambda c: (c.strike, c.right.value))


def regular_range(raw: pd.DataFrame, day: TradingDay) -> tuple[float, float] | None:
    """(low, high) of the underlying's regular-session minute aggregates, None without any."""
    if raw.empty:
        return None
    starts = pd.to_datetime(raw["t"], unit="ms", utc=True)
    regular = raw[((starts >= day.open) & (starts < day.close)).to_numpy()]
    if regular.empty:
        return None
    return float(regular["l"].min()), float(regular["h"].max())


@dataclass(frozen=True, slots=True)
class ContractBars:
    contract: OptionContract
    day: date
    raw: pd.DataFrame


class PolygonOptionsSource:
    """Minute aggregates of the same-day contracts near the money of ``underlying``, day by day."""

    def __init__(self, bars: PolygonRestSource, underlying: str, *, strikes_around: int = 5) -> None:
        self.bars = bars
        self.underlying = underlying
        self.strikes_around = strikes_around

    def contracts(self, trading_day: TradingDay) -> list[OptionContract]:
        """The contracts chosen for one day (empty, with a warning, when the underlying has no bars)."""
        span = regular_range(self.bars.raw_day(self.underlying, trading_day), trading_day)
        if span is None:
            logger.warning("%s has no regular-session bars on %s: no option contracts chosen",
                           self.underlying, trading_day.day)
            return []
        low, high = span
        listed = self.bars.client.list_options_contracts(
            underlying_ticker=options_underlying(self.underlying), expiration_date=trading_day.day.isoformat(),
            as_of=trading_day.day.isoformat(), strike_price_gte=round(low * (1 - STRIKE_SEARCH_MARGIN), 2),
            strike_price_lte=round(high * (1 + STRIKE_SEARCH_MARGIN), 2), limit=1000)
        same_day = contracts_from_reference(listed, self.underlying, trading_day.day)
        chosen = contracts_near_money(same_day, low, high, self.strikes_around)
        logger.info("%s %s: range %.2f-%.2f, %d same-day contracts listed, %d chosen", self.underlying,
                    trading_day.day, low, high, len(same_day), len(chosen))
        return chosen

    def batches(self) -> Iterator[ContractBars]:
        for trading_day in trading_days(self.bars.start, self.bars.end):
            for contract in self.contracts(trading_day):
                yield ContractBars(contract, trading_day.day, self.bars.raw_day(contract.ticker, trading_day))


class OptionBarWriter:
    """Validates a contract's minute aggregates and upserts them into ``option_bars``.

    Invalid bars go to ``bars_quarantine`` (with the ``O:`` ticker as their symbol) in the same
    transaction. An identical re-run changes nothing (``unchanged``).
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None, rules: QualityRules | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.rules = rules or QualityRules(symbol_pattern=OPTION_TICKER_PATTERN)

    def write(self, batch: ContractBars) -> WriteResult:
        bars = from_polygon_aggs(batch.raw, batch.contract.ticker, SOURCE_NAME)
        clean, quarantined = validate(bars, self.rules.at(self.clock.now()))
        contract = batch.contract
        rows = clean.rename(columns={"symbol": "ticker"}).assign(
            underlying=contract.underlying, expiry=contract.expiry, option_right=contract.right.value,
            strike=contract.strike)[list(OPTION_BAR_COLUMNS)]
        rows["trade_count"] = rows["trade_count"].astype("Int64")
        with self.engine.begin() as connection:
            upserted = bulk_upsert(connection, option_bars, rows, columns=OPTION_BAR_COLUMNS)
            store_quarantined(connection, quarantined)
        return WriteResult(len(bars), upserted.inserted, upserted.updated, upserted.unchanged, len(quarantined), 0,
                           reason_counts(quarantined))


def run_option_backfill(source: PolygonOptionsSource, writer: OptionBarWriter, *,
                        on_batch: Callable[[ContractBars, WriteResult], None] | None = None) -> WriteResult:
    """Every contract-day of ``source`` through ``writer``; returns the summed counts."""
    total = WriteResult()
    for batch in source.batches():
        result = writer.write(batch)
        total = total + result
        if on_batch is not None:
            on_batch(batch, result)
    return total


def stored_option_quotes(engine: Engine, symbol: str, first: date, last: date) -> pd.DataFrame:
    """The option bars stored for the underlying ``symbol`` on the New York dates ``first..last`` as tidy
    quote rows (:func:`scalper_shared.core.premium_fit.option_bars_as_quotes`: the close a trade print, the
    underlying's close from the ``bars`` table), for ``scalper premium check --option-bars``."""
    from scalper_shared.core.premium_fit import option_bars_as_quotes  # scipy's optimiser: only here

    lower = datetime.combine(first, datetime.min.time(), tzinfo=NEW_YORK)
    upper = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK)
    with engine.connect() as connection:
        options = pd.DataFrame(connection.execute(select(
            option_bars.c.ticker, option_bars.c.start, option_bars.c.underlying, option_bars.c.expiry,
            option_bars.c.option_right, option_bars.c.strike, option_bars.c.close).where(
            option_bars.c.underlying == symbol, option_bars.c.start >= lower, option_bars.c.start < upper)).all(),
            columns=["ticker", "start", "underlying", "expiry", "option_right", "strike", "close"])
        underlying = pd.DataFrame(connection.execute(select(bars.c.symbol, bars.c.start, bars.c.close).where(
            bars.c.symbol == symbol, bars.c.start >= lower, bars.c.start < upper)).all(),
            columns=["symbol", "start", "close"])
    return option_bars_as_quotes(options, underlying)
