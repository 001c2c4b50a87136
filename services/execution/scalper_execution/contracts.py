"""Option contracts the service trades: OCC symbols and the modelled quote of a held strike."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from scalper_shared.core.calendar import TradingDay, session_date, trading_day
from scalper_shared.core.premium import (
    PremiumModelConfig,
    annualised,
    ewma_vol_step,
    normalise_symbol,
    per_minute_variance,
    quote,
)
from scalper_shared.schema.messages import Bar, OptionRight

OCC_ROOTS = {"SPX": "SPXW"}
"""Same-day SPX options are the PM-settled weeklys, root SPXW; other roots are the symbol itself."""
_OCC = re.compile(r"^(?P<root>[A-Z]{1,6})(?P<ymd>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")
BAR_LENGTH = timedelta(minutes=1)


def occ_symbol(symbol: str, expiry: date, right: OptionRight, strike: float) -> str:
    """``SPY250701C00617000``: root, YYMMDD expiry, C/P, strike x 1000 on 8 digits (no padding)."""
    root = OCC_ROOTS.get(normalise_symbol(symbol), normalise_symbol(symbol))
    letter = "C" if right is OptionRight.CALL else "P"
    return f"{root}{expiry:%y%m%d}{letter}{round(strike * 1000):08d}"


@dataclass(frozen=True, slots=True)
class OccParts:
    root: str
    expiry: date
    right: OptionRight
    strike: float


def parse_occ(option_symbol: str) -> OccParts:
    match = _OCC.match(option_symbol)
    if not match:
        raise ValueError(f"{option_symbol!r} is not an OCC option symbol such as SPY250701C00617000")
    ymd = match["ymd"]
    expiry = date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:]))
    right = OptionRight.CALL if match["cp"] == "C" else OptionRight.PUT
    return OccParts(match["root"], expiry, right, int(match["strike"]) / 1000)


@dataclass(frozen=True, slots=True)
class OptionQuote:
    bid: float
    mid: float
    ask: float
    as_of: datetime


class MarketState:
    """The last bar and the premium model's vol input of one underlying: all the model needs.

    The vol input is the shared robust EWMA (``premium.ewma_vol_step``) over regular-hours bars,
    carried across sessions: the first bar of a session adds no return (the overnight gap is not a
    1-minute move), exactly as the training environment's episodes (``env.core.episode_vol_inputs``).
    """

    def __init__(self, symbol: str, config: PremiumModelConfig) -> None:
        self.symbol = symbol
        self.config = config
        self.variance = per_minute_variance(config.vol_prior)
        self.last_bar: Bar | None = None
        self.last_regular: Bar | None = None
        self.day: TradingDay | None = None

    def update(self, bar: Bar) -> None:
        if self.last_bar is not None and bar.start <= self.last_bar.start:
            return  # redelivered or out-of-order bar: marks only move forward
        if self.day is None or self.day.day != session_date(bar.start):
            self.day = trading_day(session_date(bar.start))
        previous = self.last_regular
        if self.day is not None and self.day.open <= bar.start < self.day.close:
            if previous is not None and self.day.open <= previous.start and previous.close > 0 and bar.close > 0:
                self.variance = ewma_vol_step(self.variance, math.log(bar.close / previous.close), self.config)
            self.last_regular = bar
        self.last_bar = bar

    @property
    def as_of(self) -> datetime | None:
        """When the last bar's close was printed (its start plus one minute)."""
        return None if self.last_bar is None else self.last_bar.start + BAR_LENGTH

    def vol_input(self) -> float:
        return float(annualised(self.variance))

    def quote(self, strike: float, right: OptionRight, config: PremiumModelConfig) -> OptionQuote | None:
        """The modelled quote of the ``strike``/``right`` same-day option at the last bar, if any."""
        if self.last_bar is None or self.day is None or self.as_of is None:
            return None
        minutes_left = (self.day.close - self.as_of).total_seconds() / 60
        minute_of_day = (self.as_of - self.day.open).total_seconds() / 60
        bid, mid, ask = quote(self.symbol, self.last_bar.close, strike, right, minutes_left,
                              self.vol_input(), minute_of_day, config)
        return OptionQuote(float(bid), float(np.asarray(mid)), float(ask), self.as_of)
