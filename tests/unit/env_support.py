"""Hand-made episodes and an independent Black-Scholes for the environment tests."""

from __future__ import annotations

import math
from datetime import date

import numpy as np

from scalper_shared.core.features import N_MARKET
from scalper_shared.core.premium import TRADING_MINUTES_PER_YEAR, PremiumModelConfig
from scalper_trainer.env import EnvConfig, EpisodeSampling, EpisodeSet

SESSION = 390
FLAT_VOL = 0.20
FLAT_VOL_PREMIUM = PremiumModelConfig(calibration_multiplier=1.0, vol_floor=FLAT_VOL, vol_cap=FLAT_VOL)
"""Implied vol 0.20 at every bar, whatever the realised vol: premiums computable by hand."""


def hand_episodes(closes: list[list[float]] | list[float], symbol: str = "SPY",
                  setups: list[list[int]] | None = None) -> EpisodeSet:
    """Full 390-minute sessions with the given closes (one list per session; shorter lists are
    extended with their last close); market features are zeros except the clock."""
    sessions = [closes] if closes and not isinstance(closes[0], list) else closes
    parts = []
    for k, path in enumerate(sessions):
        close = np.full(SESSION, float(path[-1]))
        close[:len(path)] = path
        setup = np.zeros(SESSION, np.int8)
        if setups is not None:
            setup[:len(setups[k])] = setups[k]
        minute_of_day = np.arange(1, SESSION + 1, dtype=np.float64)
        parts.append(EpisodeSet(np.zeros((SESSION, N_MARKET), np.float32), close, SESSION - minute_of_day,
                                minute_of_day, setup, np.array([0, SESSION]), (symbol,),
                                (date(2024, 3, 4 + k),), "hand"))
    return EpisodeSet.concat(parts)


def hand_config(start_row: int = 100, **overrides: object) -> EnvConfig:
    """Minute-by-minute rules: the training shortcuts (early end, skipped cooldowns) are off unless
    a test turns them on."""
    sampling = EpisodeSampling(start_row=start_row, min_steps=1)
    shortcuts = {"end_when_no_decision_left": False, "skip_minutes_without_decision": False}
    return EnvConfig(premium=FLAT_VOL_PREMIUM, sampling=sampling, **{**shortcuts, **overrides})  # type: ignore[arg-type]


def black_scholes(spot: float, strike: float, minutes_left: float, vol: float, call: bool) -> float:
    """Textbook Black-Scholes (r = 0) with math.erf, time in trading minutes."""
    if minutes_left <= 0:
        return max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
    t = minutes_left / TRADING_MINUTES_PER_YEAR
    sd = vol * math.sqrt(t)
    d1 = math.log(spot / strike) / sd + 0.5 * sd
    d2 = d1 - sd

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    if call:
        return spot * cdf(d1) - strike * cdf(d2)
    return strike * cdf(-d2) - spot * cdf(-d1)


def spy_bid_ask(mid: float, minutes_left: float = 390.0) -> tuple[float, float]:
    """SPY's documented spread rule by hand: width $0.01 + 1% of mid, times 1 + 2 x ramp**2 in the
    last hour (ramp = 1 - minutes_left / 60), rounded up to cents; bid the cent nearest
    mid - width/2, ask = bid + width."""
    ramp = min(max(1.0 - minutes_left / 60.0, 0.0), 1.0)
    width_cents = math.ceil(max(0.01, (0.01 + 0.01 * mid) * (1 + 2.0 * ramp * ramp)) * 100 - 1e-9)
    bid_cents = math.floor(mid * 100 - width_cents / 2 + 0.5)
    return round(max(bid_cents, 0) / 100, 4), round((bid_cents + width_cents) / 100, 4)


def spy_quote(spot: float, strike: float, minutes_left: float, call: bool = True) -> tuple[float, float]:
    """(bid, ask) of a SPY option under the flat 20% vol."""
    return spy_bid_ask(black_scholes(spot, strike, minutes_left, FLAT_VOL, call), minutes_left)
