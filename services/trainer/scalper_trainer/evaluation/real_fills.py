"""``--fills real``: an evaluation's fills priced from real option bars where they exist.

For every fill the contract is the position's (the ATM strike at entry, the symbol's same-day
root: ``O:SPY250701C00617000``, ``O:SPXW...``) and the minute is the fill bar's; when
``option_bars`` holds that contract's bar of that minute, the fill takes its close as the mid and
pays the premium model's spread around it on the tick grid (an entry at the ask, an exit at the
bid), else it keeps the model's price. Exit P&L, trades and day P&L are recomputed from the
repriced fills; the decisions (the agent's, the stop's and the take-profits' triggers) stay those of
the model-priced run. The summary says how many fills took each price.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, select

from scalper_shared.core.calendar import NEW_YORK, trading_day
from scalper_shared.core.occ import polygon_option_ticker
from scalper_shared.core.premium import atm_strike, round_trip_pnl, spread_quote
from scalper_shared.db.models import option_bars
from scalper_shared.schema.messages import OptionRight
from scalper_trainer.env import EnvConfig, Fill, MarketTape
from scalper_trainer.env.core import ENTRY
from scalper_trainer.evaluation.engine import EvaluationResult, build_trades

FILL_MODES = ("model", "real")
OptionCloses = Mapping[tuple[str, datetime], float]
"""(Polygon option ticker, bar start UTC) -> the bar's close."""


def load_option_closes(database_url: str, symbols: Sequence[str], start: date, end: date) -> dict[tuple[str, datetime],
                                                                                                   float]:
    """Closes of the stored option bars of ``symbols``' contracts on New York dates ``start..end``."""
    lower = datetime.combine(start, datetime.min.time(), tzinfo=NEW_YORK)
    upper = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(option_bars.c.ticker, option_bars.c.start, option_bars.c.close).where(
                option_bars.c.underlying.in_(list(symbols)), option_bars.c.start >= lower,
                option_bars.c.start < upper)).all()
    finally:
        engine.dispose()
    return {(str(ticker), pd.Timestamp(when).tz_convert("UTC").to_pydatetime()): float(close)
            for ticker, when, close in rows}


def _bar_start(tape: MarketTape, fill: Fill) -> datetime:
    """The start (UTC) of the fill bar: minute_of_day is measured at the bar's close."""
    episodes = tape.episodes
    offset = fill.row - int(tape.first_row[fill.episode]) + int(episodes.offsets[fill.episode])
    session = trading_day(episodes.days[fill.episode])
    if session is None:
        raise ValueError(f"{episodes.days[fill.episode]} is not a trading day")
    minutes = float(episodes.minute_of_day[offset]) - 1.0
    return pd.Timestamp(session.open + timedelta(minutes=minutes)).tz_convert("UTC").to_pydatetime()


def reprice_fills(result: EvaluationResult, tape: MarketTape, config: EnvConfig,
                  closes: OptionCloses) -> tuple[EvaluationResult, dict[str, Any]]:
    """``result`` with every fill that has a real option bar repriced from it (see the module doc)."""
    premium = config.premium
    specs_of = {e: tape.specs.take(np.array([e])) for e in {f.episode for f in result.fills}}
    repriced: list[Fill] = []
    entry_price: dict[int, float] = {}
    ticker_of: dict[int, str] = {}
    real = 0
    for fill in result.fills:
        specs = specs_of[fill.episode]
        if fill.reason == ENTRY:
            strike = float(np.asarray(atm_strike(specs, tape.close[fill.row], premium)).reshape(-1)[0])
            right = OptionRight.CALL if fill.side == 1 else OptionRight.PUT
            ticker_of[fill.episode] = polygon_option_ticker(tape.episodes.symbols[fill.episode],
                                                            tape.episodes.days[fill.episode], right, strike)
        close = closes.get((ticker_of[fill.episode], _bar_start(tape, fill)))
        price = fill.price
        if close is not None:
            real += 1
            bid, ask = spread_quote(specs, close, premium, tape.minutes_to_close[fill.row])
            price = float(np.asarray(ask if fill.reason == ENTRY else bid).reshape(-1)[0])
        if fill.reason == ENTRY:
            entry_price[fill.episode] = price
            repriced.append(dataclasses.replace(fill, price=price))
        else:
            pnl = float(np.asarray(round_trip_pnl(entry_price[fill.episode], price, fill.contracts, premium)))
            repriced.append(dataclasses.replace(fill, price=price, pnl=pnl))
    day_pnl: dict[tuple[str, date], float] = {}
    for fill in repriced:
        key = (tape.episodes.symbols[fill.episode], tape.episodes.days[fill.episode])
        day_pnl[key] = day_pnl.get(key, 0.0) + fill.pnl
    episode_pnl = np.array([day_pnl.get((s, d), 0.0) for s, d in zip(result.symbols, result.days, strict=True)])
    updated = dataclasses.replace(result, fills=repriced, episode_pnl=episode_pnl,
                                  trades=build_trades(repriced, tape, premium, config.risk.stop_loss_pct))
    total = len(repriced)
    summary = {"mode": "real", "fills": total, "real": real, "model": total - real,
               "real_share": real / total if total else None}
    return updated, summary
