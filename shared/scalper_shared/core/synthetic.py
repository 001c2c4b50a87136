"""The embedded synthetic market: SPY, QQQ and I:SPX 1-minute bars, generated jointly per seed.

Pure (no I/O): ingestion's default source when no ``POLYGON_API_KEY`` is set
(:class:`scalper_ingestion.sources.synthetic.SyntheticSource`, a thin adapter) and the trainer's
data-free episodes (:func:`scalper_trainer.env.episodes.synthetic_episodes`) both generate from here. Sessions follow the NYSE calendar
(:mod:`scalper_shared.core.calendar`): no bars on holidays, 210 regular minutes on early closes,
extended hours 04:00 ET - open (``pre``) and close - 20:00 ET (``post``, 17:00 on early closes).

The model, calibrated on real SPY (2025-07..10) and QQQ (2025-08..10) minute bars
(see ``bench/bench_synthetic_stats.py`` and ``tests/unit/test_synthetic_market.py``):

- **Daily anchors.** Each weekday since 2000-01-03 has an overnight gap and an open-to-close move
  for SPY and QQQ (correlated), scaled by a persistent daily volatility level, with slow mean
  reversion of the log price towards SPY 650 / QQQ 575 (stationary std ~2.5%). They come from one
  random stream per seed, so a day's open and close never depend on which range was asked for.
- **Intraday.** A market factor with a U-shaped volatility profile (per half-hour, from real SPY),
  log-AR(1) stochastic volatility within the day (clustering), Student-t shocks (fat tails) and
  trend / reversal drift regimes (a trend is followed by its reversal a third of the time: the
  momentum trap). QQQ = beta x factor + idiosyncratic noise (1-minute correlation ~0.92); SPX =
  10.04 x SPY plus tiny tracking noise (correlation ~0.99). Each path is pinned (variance-weighted
  bridge) to the day's anchored close, so a day is generated from ``(seed, day)`` alone.
- **Extended hours.** Pre-market bridges the previous close to the open (the overnight gap, with a
  08:30 ET news bump); post-market wanders from the close. Both are quiet, thin (hundreds to a few
  thousand shares a minute) and miss some minutes; regular hours are complete. I:SPX exists in
  regular hours only, and has no volume, VWAP or trade count (NaN / <NA>).
- **Bars.** Open = the previous minute's price with a small jitter; high / low from the exact
  distribution of a Brownian bridge's extremes; prices in cents; volume U-shaped (opening and
  closing prints) and coupled to |return|; VWAP inside [low, high]; trade counts from trade sizes.

Tolerances held against the real bars (regular hours, 2025-07-01..10-31, seeds 0-2; enforced by
``tests/unit/test_synthetic_market.py``): 1-minute return std per half-hour within a factor 1.5 of
the real symbol's; U-shape (first and last half-hour above the 11:30-14:00 mean); excess kurtosis
> 1; |return| autocorrelation at lags 1 / 5 / 15 > 0.1 and within a factor 1.5 of real; volume
share per half-hour within a factor 1.3 of real, first and last half-hour above every midday one;
mean 15-minute range and overnight gap std within a factor 1.5 of real; 1-minute correlation
SPY~QQQ in 0.8..0.95 (real 0.94), SPY~SPX > 0.97; momentum (past 10-minute vs next 5-minute
return correlation) in (0, 0.15), where real SPY is slightly mean-reverting (-0.04). Trading regimes of individual seeds differ: a
seed may land in a calmer or wilder four months than 2025 was (std ratios ~0.75..1.5 over seeds 0-9).

**Planted edge** (``edge``, :mod:`scalper_shared.core.edge`): ``none`` (default) or ``momentum``,
a drift after large 5-minute moves that a simple rule can trade at a profit after costs. It uses
no random draw of its own, so a day with the edge is the same day as without it plus the drift;
the tolerances above hold with it on (the tests run both).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from scalper_shared.core.calendar import TradingDay, trading_day, trading_days
from scalper_shared.core.edge import MARKET_EDGES, MarketEdge, momentum_edge_drift
from scalper_shared.core.enums import Session

SOURCE = "synthetic"
SPY, QQQ, SPX = "SPY", "QQQ", "I:SPX"
SYMBOLS: tuple[str, ...] = (SPY, QQQ, SPX)

EPOCH = date(2000, 1, 3)  # a Monday: weekday index 0 of the daily anchors
LAST_DAY = date(2100, 12, 31)
BP = 1e-4

# --- daily anchors -----------------------------------------------------------------------------
MEAN_LEVEL = {SPY: 650.0, QQQ: 575.0}
STATIONARY_LEVEL_STD = 0.02
GAP_STD = {SPY: 0.0029, QQQ: 0.0046}            # real overnight gap std (log)
DAY_MOVE_STD = {SPY: 0.0042, QQQ: 0.0055}       # open-to-close std (log)
GAP_CORRELATION, DAY_MOVE_CORRELATION = 0.9, 0.92
DAY_VOL_LOG_STD, DAY_VOL_PERSISTENCE = 0.34, 0.5

# --- intraday (regular hours) ----------------------------------------------------------------------
SPY_STD_BY_HALF_HOUR_BP = (3.57, 2.94, 2.68, 2.52, 2.42, 2.31, 2.31, 2.21, 2.15, 2.26, 2.47, 2.42, 2.89)
QQQ_OVER_SPY_STD = (1.42, 1.38, 1.36, 1.34, 1.30, 1.28, 1.22, 1.23, 1.23, 1.23, 1.15, 1.18, 1.15)
QQQ_CORRELATION = 0.925
SPX_RATIO, SPX_TRACKING_NOISE = 10.04, 0.085     # tracking noise in units of the minute's sigma
SV_LOG_STD, SV_PERSISTENCE = 0.45, 0.985
T_DOF = 8.0
REGIME_MEAN_MINUTES, TREND_PROBABILITY, REVERSAL_PROBABILITY = 20.0, 0.45, 0.35
TREND_DRIFT_RANGE = (0.1, 0.3)                   # drift per minute, in units of the minute's sigma
OPEN_JITTER = 0.2                                # open vs previous close, in units of sigma

# --- extended hours ----------------------------------------------------------------------------
EXT_STD_BP = 1.0
NEWS_BUMP_MINUTES, NEWS_BUMP_FACTOR = (270, 285), 3.0   # 08:30-08:45 ET, minutes after 04:00
PRE_PRESENCE = ((180, 0.9), (330, 0.97))        # (until minute after 04:00, probability)
POST_PRESENCE = 0.94
PRE_VOLUME_BY_HOUR = (400.0, 300.0, 320.0, 1100.0, 3800.0, 12000.0)   # 04h .. 09h ET
POST_VOLUME_BY_HOUR = (9000.0, 500.0, 450.0, 350.0)                   # 16h .. 19h ET

# --- volume --------------------------------------------------------------------------------------
DAY_VOLUME = {SPY: 55e6, QQQ: 42e6}
VOLUME_SHARE_BY_HALF_HOUR = {
    SPY: (10.8, 8.9, 7.6, 7.1, 6.25, 5.7, 5.3, 5.15, 5.05, 5.9, 6.1, 7.45, 18.7),
    QQQ: (12.4, 10.8, 8.3, 7.5, 7.0, 5.95, 5.6, 5.65, 5.4, 5.7, 5.6, 6.15, 13.95),
}
FIRST_MINUTE_WEIGHT, LAST_MINUTE_WEIGHT, PENULTIMATE_MINUTE_WEIGHT = 2.2, 4.0, 1.5
EXT_VOLUME_FACTOR = {SPY: 1.0, QQQ: 0.9}
AVERAGE_TRADE_SIZE = {Session.REGULAR: 110.0, Session.PRE: 60.0, Session.POST: 60.0}


@dataclass(frozen=True)
class Anchors:
    """Per weekday since :data:`EPOCH`: log open and log close per symbol, and the volatility level."""

    log_open: dict[str, np.ndarray]
    log_close: dict[str, np.ndarray]
    vol_level: np.ndarray


def weekday_index(day: date) -> int:
    """Index of ``day`` among the weekdays since :data:`EPOCH` (weekends map to the Friday before)."""
    if not EPOCH <= day <= LAST_DAY:
        raise ValueError(f"synthetic market covers {EPOCH}..{LAST_DAY}, not {day}")
    days = (day - EPOCH).days
    return (days // 7) * 5 + min(day.weekday(), 4)


def _lognormal_level(shocks: np.ndarray, log_std: float, persistence: float) -> np.ndarray:
    """exp of a stationary AR(1) with E[level^2] = 1."""
    innovations = shocks * log_std * np.sqrt(1.0 - persistence**2)
    initial = [persistence * shocks[0] * log_std]
    log_level = lfilter([1.0], [1.0, -persistence], innovations, zi=initial)[0]
    out: np.ndarray = np.exp(log_level - log_std**2)
    return out


@lru_cache(maxsize=8)
def anchors(seed: int) -> Anchors:
    """The daily anchors of ``seed`` (about 26,000 weekdays; computed once per seed)."""
    count = weekday_index(LAST_DAY) + 1
    normals = np.random.default_rng(np.random.SeedSequence([seed, 0xA11C])).standard_normal((6, count))
    vol = _lognormal_level(normals[0], DAY_VOL_LOG_STD, DAY_VOL_PERSISTENCE)
    gap_q = GAP_CORRELATION * normals[1] + np.sqrt(1 - GAP_CORRELATION**2) * normals[2]
    move_q = DAY_MOVE_CORRELATION * normals[3] + np.sqrt(1 - DAY_MOVE_CORRELATION**2) * normals[4]
    shocks = {SPY: (normals[1], normals[3]), QQQ: (gap_q, move_q)}
    log_open, log_close = {}, {}
    for symbol, (gap, move) in shocks.items():
        steps = np.empty(2 * count)
        steps[0::2] = gap * GAP_STD[symbol] * vol
        steps[1::2] = move * DAY_MOVE_STD[symbol] * vol
        daily_variance = GAP_STD[symbol] ** 2 + DAY_MOVE_STD[symbol] ** 2
        half_step_keep = 1.0 - daily_variance / (2 * STATIONARY_LEVEL_STD**2) / 2
        start = normals[5][0] * STATIONARY_LEVEL_STD
        deviation = lfilter([1.0], [1.0, -half_step_keep], steps, zi=[half_step_keep * start])[0]
        log_level = np.log(MEAN_LEVEL[symbol]) + deviation
        log_open[symbol], log_close[symbol] = log_level[0::2], log_level[1::2]
    return Anchors(log_open, log_close, vol)


def previous_session(day: date) -> date:
    """The trading day before ``day``."""
    current = day - timedelta(days=1)
    while trading_day(current) is None:
        current -= timedelta(days=1)
    return current


# --- intraday building blocks -----------------------------------------------------------------------

def _profile(values: Iterable[float], minutes: int) -> np.ndarray:
    """A per-half-hour profile interpolated per minute, stretched over a session of ``minutes``."""
    centres = np.arange(13) * 30 + 15
    position = (np.arange(minutes) + 0.5) * (390 / minutes)
    out: np.ndarray = np.interp(position, centres, np.asarray(tuple(values), dtype=float))
    return out


def _stochastic_vol(rng: np.random.Generator, minutes: int) -> np.ndarray:
    """Multiplicative log-AR(1) volatility with E[h^2] = 1 (clustering within the day)."""
    return _lognormal_level(rng.standard_normal(minutes), SV_LOG_STD, SV_PERSISTENCE)


def _student_t(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-variance Student-t shocks."""
    out: np.ndarray = rng.standard_t(T_DOF, size) / np.sqrt(T_DOF / (T_DOF - 2))
    return out


def _regime_drift(rng: np.random.Generator, minutes: int) -> np.ndarray:
    """Per-minute drift (in sigma units) of trend segments; a trend is reversed with some probability."""
    drift = np.zeros(minutes)
    position, previous = 0, 0.0
    while position < minutes:
        length = max(5, int(rng.geometric(1.0 / REGIME_MEAN_MINUTES)))
        magnitude = rng.uniform(*TREND_DRIFT_RANGE)
        if previous != 0.0 and rng.random() < REVERSAL_PROBABILITY:
            value = -np.sign(previous) * magnitude
        elif rng.random() < TREND_PROBABILITY:
            value = rng.choice((-1.0, 1.0)) * magnitude
        else:
            value = 0.0
        drift[position:position + length] = value
        position, previous = position + length, value
    return drift


def _pin(returns: np.ndarray, sigma: np.ndarray, total: float) -> np.ndarray:
    """``returns`` shifted so they sum to ``total``, the shift spread in proportion to variance."""
    weights = sigma**2 / np.sum(sigma**2)
    out: np.ndarray = returns + (total - returns.sum()) * weights
    return out


def _bridge_extremes(step: np.ndarray, sigma: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and min (log, relative to the bar's start) of Brownian bridges ending at ``step``."""
    spread = -2.0 * sigma**2
    high = (step + np.sqrt(step**2 + spread * np.log(uniforms[0]))) / 2
    low = (step - np.sqrt(step**2 + spread * np.log(uniforms[1]))) / 2
    return high, low


def _cents(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2)


def _ohlc(rng: np.random.Generator, start_log: float, returns: np.ndarray, sigma: np.ndarray,
          uniforms: np.ndarray, jitter: float) -> tuple[np.ndarray, ...]:
    """Cent-rounded OHLC of a path of log returns starting at ``start_log``; low <= open, close <= high."""
    log_close = start_log + np.cumsum(returns)
    log_start = np.concatenate(([start_log], log_close[:-1]))
    high_step, low_step = _bridge_extremes(returns, sigma, uniforms)
    open_ = _cents(np.exp(log_start + jitter * sigma * rng.standard_normal(len(returns))))
    close = _cents(np.exp(log_close))
    high = np.maximum(_cents(np.exp(log_start + high_step)), np.maximum(open_, close))
    low = np.minimum(_cents(np.exp(log_start + low_step)), np.minimum(open_, close))
    return open_, high, low, close


def _vwap(rng: np.random.Generator, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
          close: np.ndarray) -> np.ndarray:
    typical = (open_ + high + low + close) / 4 + 0.1 * (high - low) * rng.standard_normal(len(open_))
    out: np.ndarray = np.clip(_cents(typical), low, high)
    return out


def _trade_count(rng: np.random.Generator, volume: np.ndarray, session: Session) -> np.ndarray:
    size = AVERAGE_TRADE_SIZE[session] * np.exp(0.2 * rng.standard_normal(len(volume)))
    return np.maximum(1, np.round(volume / size))


def _regular_volume_weights(symbol: str, minutes: int) -> np.ndarray:
    """Expected share of the session's volume per minute, with opening and closing prints."""
    bucket = np.minimum((np.arange(minutes) * (390 / minutes)) // 30, 12).astype(int)
    emphasis = np.ones(minutes)
    emphasis[0], emphasis[-1], emphasis[-2] = FIRST_MINUTE_WEIGHT, LAST_MINUTE_WEIGHT, PENULTIMATE_MINUTE_WEIGHT
    targets = np.asarray(VOLUME_SHARE_BY_HALF_HOUR[symbol])[bucket]
    per_bucket = np.bincount(bucket, weights=emphasis)[bucket]
    weights = targets * emphasis / per_bucket
    out: np.ndarray = weights / weights.sum()
    return out


def _regular_volume(rng: np.random.Generator, symbol: str, vol_level: float, sv: np.ndarray,
                    shocks: np.ndarray) -> np.ndarray:
    """Integer volume per regular minute: U-shaped, higher on volatile days and volatile minutes."""
    level = DAY_VOLUME[symbol] * vol_level**0.8 * np.exp(0.15 * rng.standard_normal())
    activity = sv * (0.55 + 0.45 * np.abs(shocks) / 0.8) * np.exp(0.35 * rng.standard_normal(len(sv)) - 0.06)
    out: np.ndarray = np.round(level * _regular_volume_weights(symbol, len(sv)) * activity)
    return out


def _extended_volume(rng: np.random.Generator, symbol: str, hours: np.ndarray, by_hour: tuple[float, ...]
                     ) -> np.ndarray:
    mean = np.asarray(by_hour)[hours] * EXT_VOLUME_FACTOR[symbol]
    out: np.ndarray = np.maximum(1.0, np.round(mean * np.exp(0.9 * rng.standard_normal(len(hours)) - 0.405)))
    return out


# --- one session-day -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Segment:
    """Bars of one symbol in one session part, as arrays."""

    minutes: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    vwap: np.ndarray
    trade_count: np.ndarray
    session: Session


def _segment(rng: np.random.Generator, session: Session, minutes: np.ndarray,
             prices: tuple[np.ndarray, ...], volume: np.ndarray | None) -> _Segment:
    open_, high, low, close = prices
    if volume is None:
        nan = np.full(len(minutes), np.nan)
        return _Segment(minutes, open_, high, low, close, nan, nan, nan, session)
    return _Segment(minutes, open_, high, low, close, volume, _vwap(rng, *prices),
                    _trade_count(rng, volume, session), session)


def _regular_segments(rng: np.random.Generator, td: TradingDay, anchor: Anchors, k: int,
                      edge: MarketEdge = MarketEdge.NONE) -> list[tuple[str, _Segment]]:
    minutes = td.regular_minutes
    vol_level = anchor.vol_level[k]
    sv = _stochastic_vol(rng, minutes)
    sigma = _profile(SPY_STD_BY_HALF_HOUR_BP, minutes) * BP * vol_level * sv
    shocks = _student_t(rng, minutes)
    base = shocks + _regime_drift(rng, minutes)
    if edge == MarketEdge.MOMENTUM:
        base = base + momentum_edge_drift(sigma, base)   # no random draw: the same day, plus the edge
    factor = sigma * base
    qqq_sigma = sigma * _profile(QQQ_OVER_SPY_STD, minutes)
    qqq_shocks = QQQ_CORRELATION * (factor / sigma) + np.sqrt(1 - QQQ_CORRELATION**2) * _student_t(rng, minutes)
    spy_open, qqq_open = anchor.log_open[SPY][k], anchor.log_open[QQQ][k]
    spy_returns = _pin(factor, sigma, anchor.log_close[SPY][k] - spy_open)
    qqq_returns = _pin(qqq_sigma * qqq_shocks, qqq_sigma, anchor.log_close[QQQ][k] - qqq_open)
    tracking = SPX_TRACKING_NOISE * sigma * rng.standard_normal(minutes)
    spx_returns = spy_returns + np.diff(np.concatenate(([0.0], tracking)))
    spy_uniforms, qqq_uniforms = rng.random((2, minutes)), rng.random((2, minutes))
    index = np.arange(minutes)
    spy = _ohlc(rng, spy_open, spy_returns, sigma, spy_uniforms, OPEN_JITTER)
    qqq = _ohlc(rng, qqq_open, qqq_returns, qqq_sigma, qqq_uniforms, OPEN_JITTER)
    spx = _ohlc(rng, spy_open + np.log(SPX_RATIO), spx_returns, sigma, spy_uniforms, 0.0)
    return [
        (SPY, _segment(rng, Session.REGULAR, index, spy, _regular_volume(rng, SPY, vol_level, sv, shocks))),
        (QQQ, _segment(rng, Session.REGULAR, index, qqq,
                       _regular_volume(rng, QQQ, vol_level, sv, qqq_shocks))),
        (SPX, _segment(rng, Session.REGULAR, index, spx, None)),
    ]


def _present(rng: np.random.Generator, probability: np.ndarray) -> np.ndarray:
    return rng.random(len(probability)) < probability


def _pre_market_segment(rng: np.random.Generator, symbol: str, td: TradingDay, anchor: Anchors, k: int,
                        previous_k: int) -> _Segment:
    """04:00 ET to the open: a quiet bridge from the previous close to today's open."""
    minutes = int((td.open - td.pre_open).total_seconds() // 60)
    index = np.arange(minutes)
    sigma = EXT_STD_BP * BP * anchor.vol_level[k] * np.ones(minutes) * (1 + 0.5 * (index >= minutes - 30))
    sigma[NEWS_BUMP_MINUTES[0]:NEWS_BUMP_MINUTES[1]] *= NEWS_BUMP_FACTOR
    start = anchor.log_close[symbol][previous_k]
    returns = _pin(sigma * _student_t(rng, minutes), sigma, anchor.log_open[symbol][k] - start)
    prices = _ohlc(rng, start, returns, sigma, rng.random((2, minutes)), OPEN_JITTER)
    hours = np.minimum(index // 60, len(PRE_VOLUME_BY_HOUR) - 1)
    volume = _extended_volume(rng, symbol, hours, PRE_VOLUME_BY_HOUR)
    probability = np.where(index < PRE_PRESENCE[0][0], PRE_PRESENCE[0][1], PRE_PRESENCE[1][1])
    return _keep(_segment(rng, Session.PRE, index, prices, volume), _present(rng, probability))


def _post_market_segment(rng: np.random.Generator, symbol: str, td: TradingDay, close_log: float,
                         vol_level: float) -> _Segment:
    """The close to 20:00 ET (17:00 on early closes): a quiet walk from the regular close."""
    minutes = int((td.post_close - td.close).total_seconds() // 60)
    index = np.arange(minutes)
    sigma = EXT_STD_BP * BP * vol_level * np.where(index < 15, 1.5, 0.9)
    prices = _ohlc(rng, close_log, sigma * _student_t(rng, minutes), sigma, rng.random((2, minutes)), OPEN_JITTER)
    hours = np.minimum(index // 60, len(POST_VOLUME_BY_HOUR) - 1)
    volume = _extended_volume(rng, symbol, hours, POST_VOLUME_BY_HOUR)
    volume[:15] *= 3
    return _keep(_segment(rng, Session.POST, index, prices, volume),
                 _present(rng, np.full(minutes, POST_PRESENCE)))


def _keep(segment: _Segment, mask: np.ndarray) -> _Segment:
    fields = {name: getattr(segment, name)[mask] for name in
              ("minutes", "open", "high", "low", "close", "volume", "vwap", "trade_count")}
    return _Segment(**fields, session=segment.session)


_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
_SESSIONS: tuple[Session, ...] = (Session.PRE, Session.REGULAR, Session.POST)


def _to_frame(parts: list[tuple[int, int, _Segment]]) -> pd.DataFrame:
    """One bar batch from (symbol code, first-minute epoch ns, segment) parts, by start then symbol."""
    minute_ns = 60 * 10**9
    starts = np.concatenate([first + segment.minutes.astype(np.int64) * minute_ns for _, first, segment in parts])
    symbols = np.concatenate([np.full(len(segment.minutes), code) for code, _, segment in parts])
    sessions = np.concatenate([np.full(len(segment.minutes), _SESSIONS.index(segment.session))
                               for _, _, segment in parts])
    order = np.lexsort((symbols, starts))
    values = {name: np.concatenate([getattr(segment, name) for _, _, segment in parts])[order]
              for name in _COLUMNS}
    counts = values["trade_count"]
    missing = np.isnan(counts)
    columns = {
        "symbol": _objects(np.asarray(SYMBOLS, dtype=object)[symbols[order]]),
        "start": pd.DatetimeIndex(starts[order].astype("datetime64[ns]")).tz_localize("UTC"),
        **{name: values[name] for name in _COLUMNS[:-1]},
        "trade_count": pd.arrays.IntegerArray(np.where(missing, 0, counts).astype(np.int64), missing),
        "session": _objects(np.asarray([s.value for s in _SESSIONS], dtype=object)[sessions[order]]),
        "source": _objects(np.full(len(order), SOURCE, dtype=object)),
    }
    return pd.DataFrame(columns)


def _objects(values: np.ndarray) -> pd.Series:
    return pd.Series(values, dtype=object, copy=False)


def _epoch_ns(moment: object) -> int:
    return int(pd.Timestamp(moment).value)


def session_bars(seed: int, td: TradingDay, edge: MarketEdge = MarketEdge.NONE) -> pd.DataFrame:
    """Every synthetic bar (all symbols) of one trading day, sorted by start then symbol."""
    anchor = anchors(seed)
    k, previous_k = weekday_index(td.day), weekday_index(previous_session(td.day))
    rng = np.random.default_rng(np.random.SeedSequence([seed, td.day.toordinal()]))
    parts = []
    for symbol, segment in _regular_segments(rng, td, anchor, k, edge):
        code = SYMBOLS.index(symbol)
        parts.append((code, _epoch_ns(td.open), segment))
        if symbol == SPX:
            continue
        pre = _pre_market_segment(rng, symbol, td, anchor, k, previous_k)
        close_log = float(np.log(segment.close[-1]))
        post = _post_market_segment(rng, symbol, td, close_log, float(anchor.vol_level[k]))
        parts += [(code, _epoch_ns(td.pre_open), pre), (code, _epoch_ns(td.close), post)]
    return _to_frame(parts)


def generate_bars(symbols: Iterable[str], start: date, end: date, seed: int,
                  edge: str = MarketEdge.NONE) -> Iterator[pd.DataFrame]:
    """One DataFrame (the columns of ingestion's ``BAR_COLUMNS``) per trading day in
    ``start..end``, with the bars of ``symbols`` (any of :data:`SYMBOLS`), with the planted ``edge``
    (:mod:`scalper_shared.core.edge`; ``none`` by default)."""
    if edge not in MARKET_EDGES:
        raise ValueError(f"unknown synthetic edge {edge!r}; known: {list(MARKET_EDGES)}")
    planted = MarketEdge(edge)
    wanted = list(dict.fromkeys(symbols))
    unknown = [s for s in wanted if s not in SYMBOLS]
    if unknown:
        raise ValueError(f"the synthetic market has {list(SYMBOLS)}, not {unknown}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    weekday_index(start), weekday_index(end)  # refuse days outside the anchors before any work
    for td in trading_days(start, end):
        bars = session_bars(seed, td, planted)
        yield bars[bars["symbol"].isin(wanted)].reset_index(drop=True)

