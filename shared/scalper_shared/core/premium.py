"""Same-day (0DTE) option premium model: Black-Scholes on a modelled implied volatility.

One home for option pricing: the training environment calls it in bulk (numpy arrays over N
environments), the paper broker and the execution service call it with scalars, ``scalper premium``
checks and calibrates it against real quotes (:mod:`scalper_shared.core.premium_fit`). Pure.

Conventions (see ``docs/premium-and-risk.md``):

* Time is counted in *trading* minutes: a year has ``252 * 390`` of them, vols are annualised with
  the same figure, so ``vol**2 * t_years`` equals the per-minute variance times the minutes left.
  ``minutes_to_close`` runs to the session's close (16:00 ET, or the early close); at and after the
  last minute (``minutes_to_close <= 0``) an option is worth its intrinsic value only.
* The volatility input is a robust EWMA of 1-minute log returns that carries across sessions
  (:func:`ewma_vol_step`, :func:`robust_ewma_vol`): no restart at the open, and one outlier return
  moves it by at most :func:`max_single_return_vol_ratio`.
* ATM implied vol = ``clip(calibration_multiplier * vol_input * time_of_day_factor, vol_floor,
  vol_cap)``; a strike's vol is the ATM vol times the moneyness skew (:func:`skew_factor`).
* A position keeps the strike chosen at entry (:func:`atm_strike`); later quotes price THAT strike.
* Quotes sit on the symbol's tick grid around the model mid; ``mid`` is the model fair value; the
  spread is an absolute part plus a share of mid, widening through the last hour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtr

from scalper_shared.core.arrays import FloatArray
from scalper_shared.core.enums import OptionRight

TRADING_DAYS_PER_YEAR = 252
REGULAR_SESSION_MINUTES = 390
TRADING_MINUTES_PER_YEAR = TRADING_DAYS_PER_YEAR * REGULAR_SESSION_MINUTES
CONTRACT_MULTIPLIER = 100


class SymbolOptionSpec(BaseModel):
    """Strike grid, tick rule and spread model of one underlying's options.

    Tick: ``tick_below`` when the price is under ``tick_threshold``, else ``tick_above``.
    Spread (ask - bid): ``max(min_spread, (spread_abs + spread_pct * mid) * widening)`` rounded up to
    whole ticks, where ``widening`` rises from 1 at ``PremiumModelConfig.widening_minutes`` before the
    close to ``1 + last_hour_widening`` at the close, quadratically (:func:`spread_width`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    strike_step: float = Field(gt=0)
    """Dollars between listed strikes; the ATM strike is the nearest one (SPY and QQQ $1, SPX $5)."""
    tick_below: float = Field(gt=0)
    """Price increment, in dollars, of a premium under ``tick_threshold`` (SPX $0.05, ETFs $0.01)."""
    tick_above: float = Field(gt=0)
    """Price increment, in dollars, of a premium at or above ``tick_threshold`` (SPX $0.10, ETFs $0.01)."""
    tick_threshold: float = Field(ge=0)
    """Premium, in dollars, where the tick changes ($3.00 by the Cboe rule)."""
    spread_abs: float = Field(default=0.0, ge=0)
    """Absolute part of the bid-ask spread, in dollars (SPX $0.09 fitted; ETFs a cent)."""
    spread_pct: float = Field(ge=0, lt=1)
    """Part of the spread proportional to the mid (SPX 2% fitted; SPY 1%, QQQ 1.5% typical, not fitted)."""
    min_spread: float = Field(gt=0)
    """Narrowest spread in dollars, usually one tick."""
    last_hour_widening: float = Field(default=0.0, ge=0)
    """Extra spread at the close, rising quadratically over ``widening_minutes``: 2.0 makes it 3x
    (SPY/QQQ, after Schaeffer's 2023 figures), 1.1 is fitted on SPXW."""


_EQUITY_ETF = {"tick_below": 0.01, "tick_above": 0.01, "tick_threshold": 3.0, "min_spread": 0.01}
DEFAULT_SYMBOL_SPECS: Mapping[str, SymbolOptionSpec] = MappingProxyType({
    # SPY and QQQ options quote in pennies at every price (penny program "all-penny" classes). Typical
    # 0DTE values, not fitted (no SPY/QQQ quotes here): a cent plus ~1% (SPY) / 1.5% (QQQ) of mid,
    # about 3x by the last minutes (Schaeffer's, Sept 2023: SPY 0DTE near $1 was 5.8% wide five
    # minutes before the close against ~1% for later expiries). See docs/premium-and-risk.md.
    "SPY": SymbolOptionSpec(strike_step=1.0, spread_abs=0.01, spread_pct=0.010, last_hour_widening=2.0,
                            **_EQUITY_ETF),
    "QQQ": SymbolOptionSpec(strike_step=1.0, spread_abs=0.01, spread_pct=0.015, last_hour_widening=2.0,
                            **_EQUITY_ETF),
    # SPX/SPXW: $0.05 under $3.00, $0.10 from $3.00 (Cboe minimum increments); spread fitted on the
    # real SPXW 0DTE quotes (`scalper premium calibrate`).
    "SPX": SymbolOptionSpec(strike_step=5.0, tick_below=0.05, tick_above=0.10, tick_threshold=3.0,
                            spread_abs=0.09, spread_pct=0.02, min_spread=0.05,
                            last_hour_widening=1.1),
})

DEFAULT_TIME_OF_DAY_CURVE: tuple[tuple[float, float], ...] = (
    # fitted on the two SPXW 0DTE days of ../shared/data/options (`scalper premium calibrate`)
    (15.0, 0.9079), (45.0, 0.9287), (90.0, 0.9055), (150.0, 0.8867), (210.0, 0.9755),
    (270.0, 1.226), (315.0, 1.1784), (345.0, 1.2631), (367.5, 1.0745),
)


class PremiumModelConfig(BaseModel):
    """Every parameter of the premium model. Frozen; saved with a model as JSON (``model_dump``).

    Field by field in ``docs/premium-and-risk.md``; ``scalper premium calibrate`` fits them on real
    quotes and writes this object as JSON.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    calibration_multiplier: float = Field(default=0.7257, gt=0)
    """ATM implied vol / volatility input, the median over the calibration quotes (2021-01-06 and -08
    SPXW 0DTE: implied sat below realised on those days, hence under 1)."""
    vol_floor: float = Field(default=0.08, gt=0)
    """Lowest final implied vol, annualised (after the multiplier, curve and skew): 90% of the lowest
    real ATM IV seen (0.0998)."""
    vol_cap: float = Field(default=3.0, gt=0)
    """Highest final implied vol, annualised."""
    time_of_day_curve: tuple[tuple[float, float], ...] = DEFAULT_TIME_OF_DAY_CURVE
    """(minute since the 09:30 ET open, factor) knots, linearly interpolated, flat outside; fitted (the
    ATM IV of 0DTE rises in the afternoon in trading time)."""
    vol_prior: float = Field(default=0.1413, gt=0)
    """Annualised vol the input starts from before any return has been seen: the outlier-clipped RMS of
    every 1-minute return of the calibration days."""
    vol_halflife_minutes: float = Field(default=240.0, gt=0)
    """Half-life, in trading minutes, of the EWMA of squared 1-minute returns (carries across sessions;
    not fitted: chosen for a stable input)."""
    vol_outlier_clip: float = Field(default=4.0, ge=1)
    """A 1-minute return counts at most this many current standard deviations (one return moves the
    input by at most 2.1% with the defaults)."""
    skew_slope: float = Field(default=-0.0678)
    """Moneyness skew: ``ln(vol / atm vol) = skew_slope * z + skew_curvature * z**2`` with
    ``z = ln(K/S) / (atm_vol * sqrt(t))``; a negative slope makes OTM puts richer than OTM calls.
    Fitted on the informative OTM/ATM quotes, kept at or below 0."""
    skew_curvature: float = Field(default=0.0577)
    """Curvature of the skew (the smile) in ``z**2``; fitted, kept within 0..0.1."""
    skew_z_limit: float = Field(default=3.0, gt=0)
    """``z`` is clipped to +-this before the skew (no extrapolation far from the fitted strikes)."""
    widening_minutes: float = Field(default=60.0, gt=0)
    """Spreads widen over this many minutes before the close (``last_hour_widening`` per symbol)."""
    rate: float = 0.0
    """Annual risk-free rate of Black-Scholes; 0 because a same-day option's discounting is negligible."""
    commission_per_contract: float = Field(default=0.65, ge=0)
    """Dollars per contract per fill (a round trip pays it twice); a typical retail options commission."""
    contract_multiplier: int = Field(default=CONTRACT_MULTIPLIER, gt=0)
    """Shares per contract: a premium of $1.00 costs $100."""
    symbols: Mapping[str, SymbolOptionSpec] = Field(default_factory=lambda: dict(DEFAULT_SYMBOL_SPECS))
    """Strike grid, ticks and spread model per underlying (``I:SPX`` uses ``SPX``)."""

    @model_validator(mode="after")
    def _consistent(self) -> PremiumModelConfig:
        if self.vol_floor > self.vol_cap:
            raise ValueError(f"vol_floor {self.vol_floor} is above vol_cap {self.vol_cap}")
        minutes = [knot[0] for knot in self.time_of_day_curve]
        if not minutes or minutes != sorted(minutes) or any(f <= 0 for _, f in self.time_of_day_curve):
            raise ValueError("time_of_day_curve needs ascending minutes and positive factors")
        return self

    @property
    def ewma_alpha(self) -> float:
        """Weight of the newest squared return: ``1 - 0.5 ** (1 / vol_halflife_minutes)``."""
        return 1.0 - float(0.5 ** (1.0 / self.vol_halflife_minutes))


DEFAULT_PREMIUM_CONFIG = PremiumModelConfig()


def _out(values: FloatArray) -> Any:
    """A numpy scalar for 0-d results, the array otherwise."""
    return values[()] if values.ndim == 0 else values


def _is_call(right: OptionRight | str | ArrayLike) -> NDArray[np.bool_]:
    """``right`` as a boolean "is call" array: an OptionRight/"call"/"put", or booleans, or strings."""
    arr = np.asarray(right)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "UO":
        lowered = np.char.lower(arr.astype(str))
        unknown = ~np.isin(lowered, ("call", "put"))
        if np.any(unknown):
            raise ValueError(f"right must be 'call' or 'put', got {arr[unknown].tolist()!r}")
        return np.asarray(lowered == "call")
    raise TypeError(f"right must be an OptionRight, 'call'/'put' or booleans (is call), got {arr.dtype}")


def intrinsic_value(spot: ArrayLike, strike: ArrayLike, right: OptionRight | str | ArrayLike) -> Any:
    """``max(S - K, 0)`` for a call, ``max(K - S, 0)`` for a put."""
    s, k = np.asarray(spot, dtype=np.float64), np.asarray(strike, dtype=np.float64)
    return _out(np.asarray(np.where(_is_call(right), np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))))


def bs_price(spot: ArrayLike, strike: ArrayLike, t_years: ArrayLike, vol: ArrayLike,
             right: OptionRight | str | ArrayLike, rate: ArrayLike = 0.0) -> Any:
    """Black-Scholes price of a European option (no dividends); intrinsic value when ``vol*sqrt(t)`` is 0."""
    s, k, t, v, r = (np.asarray(x, dtype=np.float64) for x in (spot, strike, t_years, vol, rate))
    call = _is_call(right)
    discount = np.exp(-r * t)
    sd = v * np.sqrt(np.maximum(t, 0.0))
    safe_sd = np.where(sd > 0, sd, 1.0)
    d1 = (np.log(s / k) + r * t) / safe_sd + 0.5 * safe_sd
    d2 = d1 - safe_sd
    call_price = s * ndtr(d1) - k * discount * ndtr(d2)
    put_price = k * discount * ndtr(-d2) - s * ndtr(-d1)
    price = np.where(call, call_price, put_price)
    intrinsic = np.where(call, np.maximum(s - k * discount, 0.0), np.maximum(k * discount - s, 0.0))
    return _out(np.asarray(np.where(sd > 0, price, intrinsic), dtype=np.float64))


def bs_implied_vol(price: ArrayLike, spot: ArrayLike, strike: ArrayLike, t_years: ArrayLike,
                   right: OptionRight | str | ArrayLike, rate: float = 0.0,
                   low: float = 1e-4, high: float = 5.0, iterations: int = 80) -> Any:
    """The Black-Scholes vol that reproduces ``price`` (vectorised bisection on ``low..high``).

    NaN where no vol in that range does: a price at or under intrinsic value, above the upper bound,
    or no time left.
    """
    p = np.asarray(price, dtype=np.float64)
    s, k, t = (np.asarray(x, dtype=np.float64) for x in (spot, strike, t_years))
    call = _is_call(right)
    shape = np.broadcast_shapes(p.shape, s.shape, k.shape, t.shape, call.shape)
    lo, hi = np.full(shape, low), np.full(shape, high)
    p_lo = np.asarray(bs_price(s, k, t, lo, call, rate))
    p_hi = np.asarray(bs_price(s, k, t, hi, call, rate))
    valid = (t > 0) & (p > p_lo) & (p < p_hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = np.asarray(bs_price(s, k, t, mid, call, rate)) > p
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return _out(np.where(valid, 0.5 * (lo + hi), np.nan))


def time_to_expiry_years(minutes_to_close: ArrayLike,
                         config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Trading-time years to the close; 0 at and after the last minute (the option is then intrinsic)."""
    del config  # kept in the signature: every premium function takes the config last
    minutes = np.maximum(np.asarray(minutes_to_close, dtype=np.float64), 0.0)
    return _out(minutes / TRADING_MINUTES_PER_YEAR)


def minutes_to_close(now: datetime, close: datetime) -> float:
    """Minutes from ``now`` to the session ``close`` (both aware); negative after the close."""
    if now.tzinfo is None or close.tzinfo is None:
        raise ValueError("now and close must be timezone-aware")
    return (close - now).total_seconds() / 60.0


def per_minute_variance(annual_vol: float) -> float:
    """The variance of one trading minute's log return at ``annual_vol``."""
    return annual_vol * annual_vol / TRADING_MINUTES_PER_YEAR


def annualised(minute_variance: ArrayLike) -> Any:
    """The annualised vol of a per-minute variance."""
    return _out(np.sqrt(np.asarray(minute_variance, dtype=np.float64) * TRADING_MINUTES_PER_YEAR))


def ewma_vol_step(variance: float, log_return: float,
                  config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> float:
    """The EWMA per-minute variance after one more 1-minute log return.

    ``var' = (1 - a) * var + a * min(r**2, c**2 * var)`` with ``a = config.ewma_alpha`` and
    ``c = vol_outlier_clip``: a return counts at most ``c`` current standard deviations, so one
    outlier raises the vol by at most :func:`max_single_return_vol_ratio`. A NaN return (a missing
    bar) leaves the variance unchanged.
    """
    if math.isnan(log_return):
        return variance
    a = config.ewma_alpha
    clip = config.vol_outlier_clip
    return (1.0 - a) * variance + a * min(log_return * log_return, clip * clip * variance)


def max_single_return_vol_ratio(config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> float:
    """The most one return, however large, can multiply the vol input by: ``sqrt(1 + a (c**2 - 1))``."""
    return math.sqrt(1.0 + config.ewma_alpha * (config.vol_outlier_clip**2 - 1.0))


def robust_ewma_vol(closes: ArrayLike, new_session: ArrayLike | None = None,
                    config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG,
                    initial_variance: float | None = None) -> tuple[FloatArray, float]:
    """The volatility input at every bar of a 1-D close series, and the variance after the last bar.

    The series may span several sessions of one underlying in time order: ``new_session[i]`` marks
    a session's first bar, whose overnight gap is not a 1-minute return (the EWMA carries on, it is
    not restarted). Bar ``i``'s value includes bar ``i``'s own return (known at its close). Starts
    from ``initial_variance`` (per minute) or ``config.vol_prior``.
    """
    prices = np.asarray(closes, dtype=np.float64)
    if prices.ndim != 1:
        raise ValueError("robust_ewma_vol needs a 1-D series")
    starts = np.zeros(prices.size, dtype=bool) if new_session is None else np.asarray(new_session, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.concatenate(([np.nan], np.diff(np.log(prices))))
    returns[starts] = np.nan
    variance = per_minute_variance(config.vol_prior) if initial_variance is None else initial_variance
    out = np.empty(prices.size)
    for i, r in enumerate(returns.tolist()):
        variance = ewma_vol_step(variance, r, config)
        out[i] = variance
    return np.asarray(annualised(out), dtype=np.float64).reshape(prices.shape), variance


def time_of_day_factor(minute_of_day: ArrayLike,
                       config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """The intraday vol factor at ``minute_of_day`` (minutes since the 09:30 ET open)."""
    knots = np.asarray(config.time_of_day_curve, dtype=np.float64)
    return _out(np.asarray(np.interp(np.asarray(minute_of_day, dtype=np.float64), knots[:, 0], knots[:, 1])))


def implied_vol(vol_input: ArrayLike, minute_of_day: ArrayLike,
                config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Modelled ATM implied vol: ``clip(multiplier * vol_input * tod_factor, floor, cap)``.

    ``vol_input`` is :func:`robust_ewma_vol`'s; a NaN (no input at all) takes ``config.vol_prior``.
    """
    raw = np.asarray(vol_input, dtype=np.float64)
    raw = np.where(np.isnan(raw), config.vol_prior, raw)
    vol = config.calibration_multiplier * raw * time_of_day_factor(minute_of_day, config)
    return _out(np.clip(vol, config.vol_floor, config.vol_cap))


def standardised_moneyness(spot: ArrayLike, strike: ArrayLike, t_years: ArrayLike, atm_vol: ArrayLike) -> Any:
    """``z = ln(K/S) / (atm_vol * sqrt(t))``: strikes in standard deviations of the move left; 0 with no time."""
    s, k, t, v = (np.asarray(x, dtype=np.float64) for x in (spot, strike, t_years, atm_vol))
    sd = v * np.sqrt(np.maximum(t, 0.0))
    return _out(np.where(sd > 0, np.log(k / s) / np.where(sd > 0, sd, 1.0), 0.0))


def skew_factor(z: ArrayLike, config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """``exp(skew_slope * z + skew_curvature * z**2)`` with ``z`` clipped to +-``skew_z_limit``."""
    zc = np.clip(np.asarray(z, dtype=np.float64), -config.skew_z_limit, config.skew_z_limit)
    return _out(np.exp(config.skew_slope * zc + config.skew_curvature * zc * zc))


def strike_vol(spot: ArrayLike, strike: ArrayLike, t_years: ArrayLike, atm_vol: ArrayLike,
               config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """The implied vol of ``strike``: the ATM vol times the skew, within ``vol_floor..vol_cap``."""
    z = standardised_moneyness(spot, strike, t_years, atm_vol)
    vol = np.asarray(atm_vol, dtype=np.float64) * skew_factor(z, config)
    return _out(np.clip(vol, config.vol_floor, config.vol_cap))


def normalise_symbol(symbol: str) -> str:
    """``"I:SPX"`` (Polygon's index ticker) and ``"spx"`` both become ``"SPX"``."""
    return symbol.upper().removeprefix("I:")


def option_spec(symbol: str, config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> SymbolOptionSpec:
    """The option spec of ``symbol``; a ``ValueError`` naming the symbol if it has none."""
    key = normalise_symbol(symbol)
    try:
        return config.symbols[key]
    except KeyError:
        raise ValueError(f"no option spec for symbol {symbol!r}; known: {sorted(config.symbols)}") from None


@dataclass(frozen=True, slots=True)
class SymbolSpecArrays:
    """Option specs looked up once, one row per position (N environments on mixed underlyings).

    Pass it wherever a function takes ``symbol``: the hot path of a vectorised environment then skips
    the per-call symbol lookup. Build it with :func:`symbol_spec_arrays`; :meth:`take` selects rows.
    """

    strike_step: FloatArray
    tick_below: FloatArray
    tick_above: FloatArray
    tick_threshold: FloatArray
    spread_abs: FloatArray
    spread_pct: FloatArray
    min_spread: FloatArray
    last_hour_widening: FloatArray

    def take(self, rows: NDArray[np.int64]) -> SymbolSpecArrays:
        return SymbolSpecArrays(*(np.asarray(getattr(self, f))[rows] for f in _SPEC_FIELDS))


_SPEC_FIELDS = ("strike_step", "tick_below", "tick_above", "tick_threshold", "spread_abs", "spread_pct",
                "min_spread", "last_hour_widening")
SymbolLike = str | Sequence[str] | SymbolSpecArrays


def symbol_spec_arrays(symbols: Sequence[str],
                       config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> SymbolSpecArrays:
    """The spec of each of ``symbols`` as per-row arrays (a ``ValueError`` for an unknown symbol)."""
    specs = [option_spec(s, config) for s in symbols]
    return SymbolSpecArrays(*(np.array([getattr(sp, f) for sp in specs], dtype=np.float64)
                              for f in _SPEC_FIELDS))


def _spec_field(symbol: SymbolLike, name: str, config: PremiumModelConfig) -> FloatArray:
    """One spec field per symbol (a scalar for one symbol); each distinct symbol is looked up once."""
    if isinstance(symbol, SymbolSpecArrays):
        return np.asarray(getattr(symbol, name))
    if isinstance(symbol, str):
        return np.asarray(getattr(option_spec(symbol, config), name), dtype=np.float64)
    distinct, rows = np.unique(np.asarray(symbol, dtype=str), return_inverse=True)
    values = np.array([getattr(option_spec(s, config), name) for s in distinct], dtype=np.float64)
    return values[rows.reshape(-1)]


def atm_strike(symbol: SymbolLike, spot: ArrayLike,
               config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """The grid strike nearest ``spot`` (halfway rounds up): SPY/QQQ $1, SPX $5."""
    step = _spec_field(symbol, "strike_step", config)
    return _out(np.floor(np.asarray(spot, dtype=np.float64) / step + 0.5) * step)


def tick_size(symbol: SymbolLike, price: ArrayLike,
              config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Minimum price increment at ``price``."""
    below = _spec_field(symbol, "tick_below", config)
    above = _spec_field(symbol, "tick_above", config)
    threshold = _spec_field(symbol, "tick_threshold", config)
    return _out(np.asarray(np.where(np.asarray(price, dtype=np.float64) < threshold, below, above)))


def spread_width(symbol: SymbolLike, mid: ArrayLike, minutes_to_close: ArrayLike | None = None,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Ask - bid before rounding: ``max(min_spread, (spread_abs + spread_pct * mid) * widening)``.

    ``widening = 1 + last_hour_widening * ramp**2``, ``ramp`` rising linearly from 0 at
    ``widening_minutes`` before the close to 1 at the close (so most of the widening comes in the
    last minutes); no widening when ``minutes_to_close`` is None.
    """
    m = np.asarray(mid, dtype=np.float64)
    base = _spec_field(symbol, "spread_abs", config) + _spec_field(symbol, "spread_pct", config) * m
    if minutes_to_close is not None:
        left = np.asarray(minutes_to_close, dtype=np.float64)
        ramp = np.clip(1.0 - left / config.widening_minutes, 0.0, 1.0)
        base = base * (1.0 + _spec_field(symbol, "last_hour_widening", config) * ramp * ramp)
    return _out(np.asarray(np.maximum(_spec_field(symbol, "min_spread", config), base)))


def spread_quote(symbol: SymbolLike, mid: ArrayLike,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG,
                 minutes_to_close: ArrayLike | None = None) -> tuple[Any, Any]:
    """(bid, ask) on the tick grid around ``mid`` with ``bid <= mid <= ask``.

    Width = :func:`spread_width` rounded up to whole ticks (tick taken at the mid); the bid is the
    grid price nearest ``mid - width/2`` and the ask is ``bid + width``. A bid below zero becomes 0
    (a worthless option), with the ask kept at least one tick.
    """
    m = np.asarray(mid, dtype=np.float64)
    tick = np.asarray(tick_size(symbol, m, config))
    width_ticks = np.ceil(np.asarray(spread_width(symbol, m, minutes_to_close, config)) / tick - 1e-9)
    bid_ticks = np.floor((m / tick) - width_ticks / 2 + 0.5)
    bid = np.maximum(bid_ticks, 0.0) * tick
    ask = np.maximum((bid_ticks + width_ticks) * tick, tick)
    return _out(np.round(bid, 4)), _out(np.round(ask, 4))


def quote(symbol: SymbolLike, spot: ArrayLike, strike: ArrayLike,
          right: OptionRight | str | ArrayLike, minutes_to_close: ArrayLike,
          vol_input: ArrayLike, minute_of_day: ArrayLike,
          config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> tuple[Any, Any, Any]:
    """(bid, mid, ask) per contract-share of a same-day option at a fixed ``strike``.

    ``mid`` is the Black-Scholes value at the strike's modelled implied vol (ATM vol from
    ``vol_input`` and the minute, times the skew); intrinsic value at and after the last minute.
    Bid and ask come from :func:`spread_quote`, widened in the last hour. Every argument broadcasts
    (N environments at once); ``symbol`` may be one symbol or one per row.
    """
    vol = implied_vol(vol_input, minute_of_day, config)
    t_years = time_to_expiry_years(minutes_to_close, config)
    return quote_at_vol(symbol, spot, strike, right, t_years, vol, config)


def quote_at_vol(symbol: SymbolLike, spot: ArrayLike, strike: ArrayLike,
                 right: OptionRight | str | ArrayLike, t_years: ArrayLike, vol: ArrayLike,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> tuple[Any, Any, Any]:
    """:func:`quote` from an already modelled ATM implied ``vol`` and ``t_years`` (:func:`implied_vol`,
    :func:`time_to_expiry_years`): a training environment computes those once per bar."""
    vol_k = strike_vol(spot, strike, t_years, vol, config)
    mid = np.asarray(bs_price(spot, strike, t_years, vol_k, right, config.rate), dtype=np.float64)
    minutes_left = np.asarray(t_years, dtype=np.float64) * TRADING_MINUTES_PER_YEAR
    bid, ask = spread_quote(symbol, mid, config, minutes_left)
    return bid, _out(mid), ask


def commission(contracts: ArrayLike, config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Commission in dollars for one fill of ``contracts`` contracts."""
    return _out(np.asarray(contracts, dtype=np.float64) * config.commission_per_contract)


def premium_cash(premium: ArrayLike, contracts: ArrayLike,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Dollars for ``contracts`` contracts at ``premium`` per share (times the 100 multiplier)."""
    return _out(np.asarray(premium, dtype=np.float64) * np.asarray(contracts, dtype=np.float64)
                * config.contract_multiplier)


def round_trip_pnl(entry_price: ArrayLike, exit_price: ArrayLike, contracts: ArrayLike,
                   config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Net dollars of buying ``contracts`` at ``entry_price`` (the ask) and selling them at ``exit_price``
    (the bid): price change times 100 per contract, less commission on both fills."""
    gross = (np.asarray(exit_price, dtype=np.float64) - np.asarray(entry_price, dtype=np.float64))
    return _out(np.asarray(premium_cash(gross, contracts, config) - 2.0 * commission(contracts, config)))


def saved_premium_config(train_config: Mapping[str, Any] | None) -> PremiumModelConfig:
    """The premium model saved with a model (the ``premium`` of its ``TrainConfig``, as the manifest and
    the ``models`` table hold it); the default for a model saved before configs carried it."""
    saved = (train_config or {}).get("premium")
    return PremiumModelConfig.model_validate(saved) if saved else DEFAULT_PREMIUM_CONFIG
