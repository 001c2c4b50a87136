"""Option contracts the service trades: OCC symbols (``core.occ``) and the modelled quote of a held strike."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from scalper_shared.core.calendar import TradingDay, session_date, trading_day
from scalper_shared.core.occ import OCC_ROOTS, OccParts, occ_symbol, parse_occ
from scalper_shared.core.premium import (
    PremiumModelConfig,
    annualised,
    ewma_vol_step,
    per_minute_variance,
    quote,
)
from scalper_shared.schema.messages import Bar, OptionRight

BAR_LENGTH = timedelta(minutes=1)


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


__all__ = ["BAR_LENGTH", "OCC_ROOTS", "MarketState", "OccParts", "OptionQuote", "occ_symbol", "parse_occ"]
