"""Batch market features: vectorised numpy over whole symbol-sessions (training, backtests).

Sessions are stacked into a (sessions x minutes) matrix, right-padded with flat bars; every
formula is causal along the minute axis, so the padding never reaches a real row and is dropped.
Recursive smoothers run through ``scipy.signal.lfilter`` with the same update
``y[t] = a*x[t] + (1-a)*y[t-1]`` (seeded ``y[-1] = x[0]``) as the incremental implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from scalper_shared.core.arrays import FloatArray, IntArray
from scalper_shared.core.features.context import context_returns
from scalper_shared.core.features.numeric import libm_log
from scalper_shared.core.features.sessions import (
    MINUTE_MS,
    BarArrays,
    SessionBars,
    split_sessions,
)
from scalper_shared.core.features.spec import FEATURE_SPEC, MARKET_INDEX, FeatureSpec, Params

SessionMap = Mapping[date, SessionBars]


@dataclass(frozen=True, slots=True)
class FeatureDay:
    """One symbol-session of batch features on its gap-filled minute grid (oldest first): bar starts
    (epoch ms UTC), the market features in spec order, the (gap-filled) prices, whether the minute had
    a bar, and whole minutes from the bar's end to the session close."""

    symbol: str
    day: date
    spec_hash: str
    minutes: IntArray
    values: FloatArray
    close: FloatArray
    high: FloatArray
    low: FloatArray
    real: npt.NDArray[np.bool_]
    minutes_to_close: npt.NDArray[np.int32]
    unavailable: tuple[str, ...] = ()
    """Features of every row of the day computed without their inputs (``availability``: an equity
    day without volume)."""

    def __len__(self) -> int:
        return len(self.minutes)


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """Market features of one symbol: one row per grid minute, sessions back to back.

    ``offsets[i]:offsets[i+1]`` are the rows of session ``i``; ``real`` is False on gap-filled rows.
    """

    minutes: IntArray
    values: FloatArray
    real: npt.NDArray[np.bool_]
    offsets: IntArray
    spec_hash: str

    def session(self, i: int) -> FloatArray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1


def symbol_features(bars: BarArrays, reference: BarArrays | None = None, peer: BarArrays | None = None,
                    spec: FeatureSpec = FEATURE_SPEC) -> FeatureFrame:
    """Features of a symbol from raw bars (any hours); ``reference``/``peer`` bars for the context."""
    return session_features(split_sessions(bars), by_day(reference), by_day(peer), spec)


def by_day(bars: BarArrays | None) -> dict[date, SessionBars]:
    return {} if bars is None else {s.bounds.day: s for s in split_sessions(bars)}


def session_features(sessions: Sequence[SessionBars], reference: SessionMap | None = None,
                     peer: SessionMap | None = None, spec: FeatureSpec = FEATURE_SPEC) -> FeatureFrame:
    """Features of already split, gap-filled sessions of one symbol."""
    if not sessions:
        return FeatureFrame(np.zeros(0, np.int64), np.zeros((0, spec.n_market)), np.zeros(0, bool),
                            np.zeros(1, np.int64), spec.spec_hash)
    lengths = np.array([len(s.bars) for s in sessions])
    grid = _Grid.stack(sessions, int(lengths.max()))
    ref_ret, peer_ret = _context(sessions, grid.width, reference or {}, peer or {}, spec.params)
    matrix = _compute(grid, ref_ret, peer_ret, spec)
    keep = np.arange(grid.width)[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return FeatureFrame(grid.t[keep], matrix[keep], grid.real[keep], offsets, spec.spec_hash)


@dataclass(frozen=True, slots=True)
class _Grid:
    t: IntArray
    o: FloatArray
    h: FloatArray
    l: FloatArray  # noqa: E741
    c: FloatArray
    v: FloatArray
    real: npt.NDArray[np.bool_]
    minute: IntArray
    close_ms: IntArray

    @property
    def width(self) -> int:
        return int(self.t.shape[1])

    @classmethod
    def stack(cls, sessions: Sequence[SessionBars], width: int) -> _Grid:
        def pad(values: npt.NDArray[Any], fill: object) -> npt.NDArray[Any]:
            return np.concatenate([values, np.full(width - len(values), fill, dtype=values.dtype)])

        rows = []
        for s in sessions:
            b, last = s.bars, s.bars.c[-1]
            extra = np.arange(1, width - len(b) + 1, dtype=np.int64) * MINUTE_MS + b.t[-1]
            rows.append((np.concatenate([b.t, extra]), pad(b.o, last), pad(b.h, last), pad(b.l, last),
                         pad(b.c, last), pad(b.v, 0.0), pad(s.real, False)))
        t, o, h, l, c, v, real = (np.stack(col) for col in zip(*rows, strict=True))  # noqa: E741
        opens = np.array([s.bounds.open_ms for s in sessions], dtype=np.int64)[:, None]
        closes = np.array([s.bounds.close_ms for s in sessions], dtype=np.int64)[:, None]
        return cls(t, o, h, l, c, v, real, (t - opens) // MINUTE_MS, closes)


def _context(sessions: Sequence[SessionBars], width: int, reference: SessionMap, peer: SessionMap,
             p: Params) -> tuple[FloatArray, FloatArray]:
    ref_rows, peer_rows = [], []
    for s in sessions:
        minutes = s.bars.t[0] + np.arange(width, dtype=np.int64) * MINUTE_MS
        ref_rows.append(context_returns(minutes, reference.get(s.bounds.day), p.relative_strength_horizon,
                                        p.return_scale))
        peer_rows.append(context_returns(minutes, peer.get(s.bounds.day), p.peer_return_horizon,
                                         p.return_scale))
    return np.stack(ref_rows), np.stack(peer_rows)


def ema(x: FloatArray, alpha: float) -> FloatArray:
    """Row-wise ``y[t] = alpha*x[t] + (1-alpha)*y[t-1]`` with ``y[-1] = x[0]``."""
    decay = 1.0 - alpha
    y, _ = lfilter([alpha], [1.0, -decay], x, axis=1, zi=decay * x[:, :1])
    return np.asarray(y)


def _lagged(x: FloatArray, k: int, fill: FloatArray) -> FloatArray:
    """``x`` shifted right by ``k`` along rows, the first ``k`` columns set to ``fill`` (a column)."""
    k = min(k, x.shape[1])
    return np.concatenate([np.broadcast_to(fill, (x.shape[0], k)), x[:, :x.shape[1] - k]], axis=1)


def _divide(num: FloatArray, den: FloatArray, where: npt.NDArray[np.bool_]) -> FloatArray:
    return np.divide(num, den, out=np.zeros_like(num), where=where)


def _rolling_sum(x: FloatArray, window: int, lag: int) -> FloatArray:
    """Sum of ``x[t-lag-window+1 .. t-lag]`` (zeros before the row start), oldest term first."""
    zeros = np.zeros((x.shape[0], 1))
    total = np.zeros_like(x)
    for k in range(lag + window - 1, lag - 1, -1):
        total = total + (_lagged(x, k, zeros) if k else x)
    return total


def _compute(g: _Grid, ref_ret: FloatArray, peer_ret: FloatArray, spec: FeatureSpec) -> FloatArray:
    p = spec.params
    out = np.empty((*g.c.shape, spec.n_market))
    first_open = g.o[:, :1]
    prev_close = _lagged(g.c, 1, first_open)
    tr = np.maximum(g.h, prev_close) - np.minimum(g.l, prev_close)
    atr = ema(tr, p.wilder_alpha(p.atr_period))
    atr_used = np.maximum(atr, p.atr_floor_fraction * g.c)
    col = MARKET_INDEX

    returns = {k: p.return_scale * libm_log(g.c / _lagged(g.c, k, first_open)) for k in p.return_horizons}
    for k in p.return_horizons:
        out[..., col[f"ret_{k}"]] = returns[k]
    out[..., col["dist_ema9"]] = (g.c - ema(g.c, p.ema_alpha(p.ema_fast))) / atr_used
    out[..., col["dist_ema21"]] = (g.c - ema(g.c, p.ema_alpha(p.ema_slow))) / atr_used
    macd = ema(g.c, p.ema_alpha(p.macd_fast)) - ema(g.c, p.ema_alpha(p.macd_slow))
    out[..., col["macd_hist"]] = (macd - ema(macd, p.ema_alpha(p.macd_signal))) / atr_used
    change = g.c - prev_close
    gain = ema(np.maximum(change, 0.0), p.wilder_alpha(p.rsi_period))
    loss = ema(np.maximum(-change, 0.0), p.wilder_alpha(p.rsi_period))
    out[..., col["rsi_centred"]] = _divide(gain - loss, gain + loss, gain + loss > 0)

    _anchors(g, atr_used, out, p)
    out[..., col["atr_pct"]] = p.return_scale * atr / g.c
    squares = _rolling_sum(returns[1] * returns[1], p.realised_vol_window, 0)
    n_vol = np.minimum(np.arange(g.width) + 1, p.realised_vol_window)
    out[..., col["realised_vol_15"]] = np.sqrt(p.realised_vol_window / n_vol * squares)
    out[..., col["volume_z"]] = _volume_z(g.v, p)
    _bar_shape(g, out)
    out[..., col["relative_strength"]] = np.where(np.isnan(ref_ret), 0.0,
                                                  returns[p.relative_strength_horizon] - ref_ret)
    out[..., col["peer_ret_5"]] = np.nan_to_num(peer_ret, nan=0.0)
    _clock(g, out, p)
    np.clip(out, [f.low for f in spec.market], [f.high for f in spec.market], out=out)
    return out


def _anchors(g: _Grid, atr_used: FloatArray, out: FloatArray, p: Params) -> None:
    col = MARKET_INDEX
    typical = (g.h + g.l + g.c) / 3.0
    cum_volume = np.cumsum(g.v, axis=1)
    vwap_volume = _divide(np.cumsum(typical * g.v, axis=1), cum_volume, cum_volume > 0)
    vwap_time = np.cumsum(typical, axis=1) / (np.arange(g.width) + 1.0)
    vwap = np.where(cum_volume > 0, vwap_volume, vwap_time)
    out[..., col["dist_vwap"]] = (g.c - vwap) / atr_used
    out[..., col["dist_high_of_day"]] = (g.c - np.maximum.accumulate(g.h, axis=1)) / atr_used
    out[..., col["dist_low_of_day"]] = (g.c - np.minimum.accumulate(g.l, axis=1)) / atr_used
    forming = g.minute < p.opening_range_minutes
    forming[:, 0] = True
    or_high = np.maximum.accumulate(np.where(forming, g.h, -np.inf), axis=1)
    or_low = np.minimum.accumulate(np.where(forming, g.l, np.inf), axis=1)
    width = np.maximum(or_high - or_low, p.atr_floor_fraction * g.c)
    out[..., col["opening_range_pos"]] = 2.0 * (g.c - (or_high + or_low) / 2.0) / width


def _volume_z(v: FloatArray, p: Params) -> FloatArray:
    n = np.minimum(np.arange(v.shape[1]), p.volume_window).astype(np.float64)
    n_safe = np.maximum(n, 1.0)
    mean = _rolling_sum(v, p.volume_window, 1) / n_safe
    var = np.zeros_like(v)
    zeros = np.zeros((v.shape[0], 1))
    for k in range(p.volume_window, 0, -1):
        inside = (np.arange(v.shape[1]) >= k)[None, :]
        deviation = _lagged(v, k, zeros) - mean
        var = var + np.where(inside, deviation * deviation, 0.0)
    var = var / n_safe
    usable = (n >= p.volume_min_history) & (var > (1e-6 * mean) ** 2) & (var > 0)
    return _divide(v - mean, np.sqrt(var), usable)


def _bar_shape(g: _Grid, out: FloatArray) -> None:
    spread = g.h - g.l
    ranged = spread > 0
    out[..., MARKET_INDEX["body_ratio"]] = _divide(g.c - g.o, spread, ranged)
    wicks = (np.minimum(g.o, g.c) - g.l) - (g.h - np.maximum(g.o, g.c))
    out[..., MARKET_INDEX["wick_balance"]] = _divide(wicks, spread, ranged)


def _clock(g: _Grid, out: FloatArray, p: Params) -> None:
    to_close = ((g.close_ms - g.t) // MINUTE_MS - 1).astype(np.float64)
    out[..., MARKET_INDEX["minutes_since_open"]] = (g.minute + 1) / p.clock_scale_minutes
    out[..., MARKET_INDEX["minutes_to_close"]] = to_close / p.clock_scale_minutes
    out[..., MARKET_INDEX["theta_pressure"]] = 1.0 - np.sqrt(np.maximum(to_close, 0.0) / p.clock_scale_minutes)

