"""Same-day (0DTE) ATM option premium model: Black-Scholes on a modelled implied volatility.

One home for option pricing: the training environment calls it in bulk (numpy arrays over N
environments), the paper broker and the execution service call it with scalars. Everything is pure.

Conventions (see ``docs/premium-and-risk.md``):

* Time is counted in *trading* minutes: a year has ``252 * 390`` of them, realised volatility is
  annualised with the same figure, so ``vol**2 * t_years`` equals the per-minute variance times the
  minutes left. ``minutes_to_close`` runs to the session's close (16:00 ET, or the early close).
* Implied vol = ``calibration_multiplier * clip(realised_vol * time_of_day_factor, vol_floor, vol_cap)``.
  Plain Black-Scholes on a 1-day vol under-prices ATM 0DTE entry premium by about 1.8x in
  published comparisons; ATM premium is close to linear in vol, so the multiplier defaults to 1.8.
* A position keeps the strike chosen at entry (:func:`atm_strike`); later quotes price THAT strike.
* Quotes sit on the symbol's tick grid around the model mid; ``mid`` is the model fair value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtr

from scalper_shared.schema.messages import OptionRight

FloatArray = NDArray[np.float64]

TRADING_DAYS_PER_YEAR = 252
REGULAR_SESSION_MINUTES = 390
TRADING_MINUTES_PER_YEAR = TRADING_DAYS_PER_YEAR * REGULAR_SESSION_MINUTES
CONTRACT_MULTIPLIER = 100


class SymbolOptionSpec(BaseModel):
    """Strike grid, tick rule and spread model of one underlying's options.

    Tick: ``tick_below`` when the price is under ``tick_threshold``, else ``tick_above``.
    Spread (ask - bid): ``max(min_spread, spread_pct * mid)``, rounded up to whole ticks.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strike_step: float = Field(gt=0)
    tick_below: float = Field(gt=0)
    tick_above: float = Field(gt=0)
    tick_threshold: float = Field(ge=0)
    spread_pct: float = Field(ge=0, lt=1)
    min_spread: float = Field(gt=0)


_EQUITY_ETF = {"tick_below": 0.01, "tick_above": 0.01, "tick_threshold": 3.0, "min_spread": 0.01}
DEFAULT_SYMBOL_SPECS: Mapping[str, SymbolOptionSpec] = MappingProxyType({
    # SPY and QQQ options quote in pennies at every price (penny program "all-penny" classes).
    "SPY": SymbolOptionSpec(strike_step=1.0, spread_pct=0.010, **_EQUITY_ETF),
    "QQQ": SymbolOptionSpec(strike_step=1.0, spread_pct=0.015, **_EQUITY_ETF),
    # SPX/SPXW: $0.05 under $3.00, $0.10 from $3.00 (Cboe minimum increments).
    "SPX": SymbolOptionSpec(strike_step=5.0, tick_below=0.05, tick_above=0.10, tick_threshold=3.0,
                            spread_pct=0.015, min_spread=0.10),
})

DEFAULT_TIME_OF_DAY_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 1.30), (30.0, 1.10), (90.0, 1.00), (300.0, 0.95), (360.0, 1.05), (390.0, 1.15),
)


class PremiumModelConfig(BaseModel):
    """Every parameter of the premium model. Frozen; saved with a model as JSON (``model_dump``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calibration_multiplier: float = Field(default=1.8, gt=0)
    vol_floor: float = Field(default=0.10, gt=0)
    vol_cap: float = Field(default=3.0, gt=0)
    time_of_day_curve: tuple[tuple[float, float], ...] = DEFAULT_TIME_OF_DAY_CURVE
    """(minute since the 09:30 ET open, factor) knots, linearly interpolated, flat outside."""
    realised_vol_window: int = Field(default=30, ge=2)
    """1-minute closes callers use for the realised vol (see :func:`rolling_realised_vol`)."""
    min_minutes_to_close: float = Field(default=1.0, gt=0)
    rate: float = 0.0
    commission_per_contract: float = Field(default=0.65, ge=0)
    contract_multiplier: int = Field(default=CONTRACT_MULTIPLIER, gt=0)
    symbols: Mapping[str, SymbolOptionSpec] = Field(default_factory=lambda: dict(DEFAULT_SYMBOL_SPECS))

    @model_validator(mode="after")
    def _consistent(self) -> PremiumModelConfig:
        if self.vol_floor > self.vol_cap:
            raise ValueError(f"vol_floor {self.vol_floor} is above vol_cap {self.vol_cap}")
        minutes = [knot[0] for knot in self.time_of_day_curve]
        if not minutes or minutes != sorted(minutes) or any(f <= 0 for _, f in self.time_of_day_curve):
            raise ValueError("time_of_day_curve needs ascending minutes and positive factors")
        return self


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


def time_to_expiry_years(minutes_to_close: ArrayLike,
                         config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Trading-time years to the close, floored at ``min_minutes_to_close``."""
    minutes = np.maximum(np.asarray(minutes_to_close, dtype=np.float64), config.min_minutes_to_close)
    return _out(minutes / TRADING_MINUTES_PER_YEAR)


def minutes_to_close(now: datetime, close: datetime) -> float:
    """Minutes from ``now`` to the session ``close`` (both aware); negative after the close."""
    if now.tzinfo is None or close.tzinfo is None:
        raise ValueError("now and close must be timezone-aware")
    return (close - now).total_seconds() / 60.0


def annualised_realised_vol(closes: ArrayLike, axis: int = -1) -> Any:
    """Annualised realised vol of 1-minute closes: RMS of log returns times ``sqrt(252*390)``.

    Zero-mean (RMS) estimator, the usual choice for 1-minute returns. Needs at least 2 closes.
    """
    prices = np.asarray(closes, dtype=np.float64)
    if prices.shape[axis] < 2:
        raise ValueError("realised vol needs at least 2 closes")
    returns = np.diff(np.log(prices), axis=axis)
    return _out(np.sqrt(np.mean(returns**2, axis=axis) * TRADING_MINUTES_PER_YEAR))


def rolling_realised_vol(closes: ArrayLike, window: int = DEFAULT_PREMIUM_CONFIG.realised_vol_window) -> FloatArray:
    """Annualised realised vol at every minute of a 1-D close series, over the last ``window`` closes.

    Early minutes use the closes available so far; minute 0 (no return yet) is NaN.
    """
    prices = np.asarray(closes, dtype=np.float64)
    if prices.ndim != 1 or window < 2:
        raise ValueError("rolling_realised_vol needs a 1-D series and window >= 2")
    squared = np.concatenate(([0.0], np.diff(np.log(prices)) ** 2))
    cumulative = np.cumsum(squared)
    index = np.arange(prices.size)
    start = np.maximum(index - (window - 1), 0)
    total = cumulative - cumulative[start]
    count = index - start
    with np.errstate(invalid="ignore", divide="ignore"):
        vol = np.sqrt(np.where(count > 0, total / np.maximum(count, 1), np.nan) * TRADING_MINUTES_PER_YEAR)
    return np.asarray(vol, dtype=np.float64)


def time_of_day_factor(minute_of_day: ArrayLike,
                       config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """The intraday vol factor at ``minute_of_day`` (minutes since the 09:30 ET open)."""
    knots = np.asarray(config.time_of_day_curve, dtype=np.float64)
    return _out(np.asarray(np.interp(np.asarray(minute_of_day, dtype=np.float64), knots[:, 0], knots[:, 1])))


def implied_vol(realised_vol: ArrayLike, minute_of_day: ArrayLike,
                config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> Any:
    """Modelled implied vol: ``multiplier * clip(realised_vol * tod_factor, floor, cap)``.

    A NaN realised vol (no history yet) falls to the floor.
    """
    raw = np.asarray(realised_vol, dtype=np.float64) * time_of_day_factor(minute_of_day, config)
    raw = np.where(np.isnan(raw), config.vol_floor, raw)
    return _out(config.calibration_multiplier * np.clip(raw, config.vol_floor, config.vol_cap))


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
    spread_pct: FloatArray
    min_spread: FloatArray

    def take(self, rows: NDArray[np.int64]) -> SymbolSpecArrays:
        return SymbolSpecArrays(*(np.asarray(getattr(self, f))[rows] for f in _SPEC_FIELDS))


_SPEC_FIELDS = ("strike_step", "tick_below", "tick_above", "tick_threshold", "spread_pct", "min_spread")
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


def spread_quote(symbol: SymbolLike, mid: ArrayLike,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> tuple[Any, Any]:
    """(bid, ask) on the tick grid around ``mid`` with ``bid <= mid <= ask``.

    Width = ``max(min_spread, spread_pct * mid)`` rounded up to whole ticks (tick taken at the mid);
    the bid is the grid price nearest ``mid - width/2`` and the ask is ``bid + width``. A bid below
    zero becomes 0 (a worthless option), with the ask kept at least one tick.
    """
    m = np.asarray(mid, dtype=np.float64)
    tick = np.asarray(tick_size(symbol, m, config))
    pct = _spec_field(symbol, "spread_pct", config)
    min_spread = _spec_field(symbol, "min_spread", config)
    width_ticks = np.ceil(np.maximum(min_spread, pct * m) / tick - 1e-9)
    bid_ticks = np.floor((m / tick) - width_ticks / 2 + 0.5)
    bid = np.maximum(bid_ticks, 0.0) * tick
    ask = np.maximum((bid_ticks + width_ticks) * tick, tick)
    return _out(np.round(bid, 4)), _out(np.round(ask, 4))


def quote(symbol: SymbolLike, spot: ArrayLike, strike: ArrayLike,
          right: OptionRight | str | ArrayLike, minutes_to_close: ArrayLike,
          realised_vol: ArrayLike, minute_of_day: ArrayLike,
          config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> tuple[Any, Any, Any]:
    """(bid, mid, ask) per contract-share of a same-day option at a fixed ``strike``.

    ``mid`` is the Black-Scholes value at the modelled implied vol with ``minutes_to_close`` floored;
    bid and ask come from :func:`spread_quote`. Every argument broadcasts (N environments at once);
    ``symbol`` may be one symbol or one per row.
    """
    vol = implied_vol(realised_vol, minute_of_day, config)
    t_years = time_to_expiry_years(minutes_to_close, config)
    return quote_at_vol(symbol, spot, strike, right, t_years, vol, config)


def quote_at_vol(symbol: SymbolLike, spot: ArrayLike, strike: ArrayLike,
                 right: OptionRight | str | ArrayLike, t_years: ArrayLike, vol: ArrayLike,
                 config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> tuple[Any, Any, Any]:
    """:func:`quote` from an already modelled implied ``vol`` and ``t_years`` (:func:`implied_vol`,
    :func:`time_to_expiry_years`): a training environment computes those once per bar."""
    mid = np.asarray(bs_price(spot, strike, t_years, vol, right, config.rate), dtype=np.float64)
    bid, ask = spread_quote(symbol, mid, config)
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
