"""Incremental market features: constant work per new bar, plain Python floats, state per symbol.

The same formulas, in the same floating-point order, as ``batch`` (which is the reference):
smoothers update ``y = a*x + (1-a)*y`` seeded with the first value, rolling sums add oldest first.
A bar that skips minutes first emits the flat, zero-volume bars of the missing minutes; a bar of a
new session resets the state; bars outside regular hours, repeated or older minutes are ignored.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from scalper_shared.core.features.context import ContextLookup, no_context
from scalper_shared.core.features.sessions import MINUTE_MS, BarInput, SessionBounds, session_of
from scalper_shared.core.features.spec import FEATURE_SPEC, FeatureSpec

__all__ = ["BarInput", "FeatureRow", "IncrementalFeatures"]

logger = logging.getLogger(__name__)


class FeatureRow(NamedTuple):
    """The market features of one symbol-minute; ``real`` is False on a gap-filled minute."""

    minute: int
    values: tuple[float, ...]
    real: bool


class IncrementalFeatures:
    """Per-symbol streaming state. ``update(bar, context_at)`` returns the rows it completes.

    Performance (``bench/bench_features.py``): the smoothers are inlined as plain float attributes with
    their weights precomputed, every constant is read once in ``__init__``, min/max are comparisons
    (no builtin calls), and the row is built without the NamedTuple constructor. The floating-point
    operations and their order are those of ``batch`` (checked by tests/unit/test_features_*.py).
    """

    def __init__(self, symbol: str, spec: FeatureSpec = FEATURE_SPEC) -> None:
        self.symbol = symbol
        self.spec = spec
        p = spec.params
        # (alpha, 1 - alpha) of every smoother
        self._a_fast, self._d_fast = _weights(p.ema_alpha(p.ema_fast))
        self._a_slow, self._d_slow = _weights(p.ema_alpha(p.ema_slow))
        self._a_macd_fast, self._d_macd_fast = _weights(p.ema_alpha(p.macd_fast))
        self._a_macd_slow, self._d_macd_slow = _weights(p.ema_alpha(p.macd_slow))
        self._a_signal, self._d_signal = _weights(p.ema_alpha(p.macd_signal))
        self._a_atr, self._d_atr = _weights(p.wilder_alpha(p.atr_period))
        self._a_rsi, self._d_rsi = _weights(p.wilder_alpha(p.rsi_period))
        self._horizon = max(p.return_horizons)
        _, self._k2, self._k3 = (-k for k in p.return_horizons)
        self._scale = p.return_scale
        self._floor = p.atr_floor_fraction
        self._vol_window = p.realised_vol_window
        self._volume_min = p.volume_min_history
        self._or_minutes = p.opening_range_minutes
        self._clock_scale = p.clock_scale_minutes
        self._low = tuple(f.low for f in spec.market)
        self._high = tuple(f.high for f in spec.market)
        self._bounds: SessionBounds | None = None
        self._reset_session(None, 0.0)

    @property
    def last_minute(self) -> int | None:
        return self._last_t

    def _reset_session(self, bounds: SessionBounds | None, first_open: float) -> None:
        p = self.spec.params
        self._bounds = bounds
        self._last_t: int | None = None
        self._prev_close = first_open
        self._closes: deque[float] = deque([first_open] * self._horizon, maxlen=self._horizon)
        # smoother values; the first bar seeds them with its own inputs (see _step)
        self._ema_fast = self._ema_slow = self._macd_fast = self._macd_slow = 0.0
        self._macd_signal = self._atr = self._gain = self._loss = 0.0
        self._cum_volume = self._cum_price_volume = self._cum_typical = 0.0
        self._count = 0
        self._high_of_day = -math.inf
        self._low_of_day = math.inf
        self._or_high = -math.inf
        self._or_low = math.inf
        self._squares: deque[float] = deque([0.0] * p.realised_vol_window, maxlen=p.realised_vol_window)
        self._volumes: deque[float] = deque(maxlen=p.volume_window)

    def update(self, bar: BarInput, context_at: ContextLookup = no_context) -> list[FeatureRow]:
        """Consume one bar; returns the gap-filled rows (if any) then the bar's own row."""
        t = bar.t
        bounds = self._bounds
        if bounds is None or not bounds.open_ms <= t < bounds.close_ms:
            bounds = session_of(t)
            if bounds is None:
                return []
        if bounds is not self._bounds and bounds != self._bounds:
            self._reset_session(bounds, bar.o)
        elif self._last_t is not None and t <= self._last_t:
            logger.debug("symbol=%s ignores bar %s at or before %s", self.symbol, t, self._last_t)
            return []
        rows = []
        if self._last_t is not None and t > self._last_t + MINUTE_MS:
            flat = self._prev_close
            for gap_t in range(self._last_t + MINUTE_MS, t, MINUTE_MS):
                rows.append(self._step(gap_t, flat, flat, flat, flat, 0.0, False, context_at))
        rows.append(self._step(t, bar.o, bar.h, bar.l, bar.c, bar.v, True, context_at))
        return rows

    def replay(self, bars: Iterable[BarInput], context_at: ContextLookup = no_context) -> list[FeatureRow]:
        """Feed many bars in order (e.g. to rebuild state after a restart)."""
        rows: list[FeatureRow] = []
        for bar in bars:
            rows.extend(self.update(bar, context_at))
        return rows

    def _step(self, t: int, o: float, h: float, l: float, c: float, v: float,  # noqa: E741
              real: bool, context_at: ContextLookup) -> FeatureRow:
        bounds = self._bounds
        assert bounds is not None
        minute = (t - bounds.open_ms) // MINUTE_MS
        prev_close = self._prev_close
        change = c - prev_close
        tr = (h if h > prev_close else prev_close) - (l if l < prev_close else prev_close)
        gain_in = change if change > 0.0 else 0.0
        loss_in = -change if -change > 0.0 else 0.0
        if self._count == 0:  # seed every smoother with its first input: y0 = a*x0 + (1-a)*x0
            self._atr, self._gain, self._loss = tr, gain_in, loss_in
            self._ema_fast = self._ema_slow = self._macd_fast = self._macd_slow = c
        atr = self._atr = self._a_atr * tr + self._d_atr * self._atr
        floor = self._floor * c
        atr_used = atr if atr > floor else floor
        closes = self._closes
        scale = self._scale
        ret_1 = scale * math.log(c / closes[-1])
        ret_5 = scale * math.log(c / closes[self._k2])
        ret_15 = scale * math.log(c / closes[self._k3])
        self._ema_fast = self._a_fast * c + self._d_fast * self._ema_fast
        dist_fast = (c - self._ema_fast) / atr_used
        self._ema_slow = self._a_slow * c + self._d_slow * self._ema_slow
        dist_slow = (c - self._ema_slow) / atr_used
        self._macd_fast = self._a_macd_fast * c + self._d_macd_fast * self._macd_fast
        self._macd_slow = self._a_macd_slow * c + self._d_macd_slow * self._macd_slow
        macd = self._macd_fast - self._macd_slow
        if self._count == 0:
            self._macd_signal = macd
        self._macd_signal = self._a_signal * macd + self._d_signal * self._macd_signal
        macd_hist = (macd - self._macd_signal) / atr_used
        gain = self._gain = self._a_rsi * gain_in + self._d_rsi * self._gain
        loss = self._loss = self._a_rsi * loss_in + self._d_rsi * self._loss
        rsi = (gain - loss) / (gain + loss) if gain + loss > 0 else 0.0
        vwap_dist, high_dist, low_dist, or_pos = self._anchors(minute, h, l, c, v, atr_used)
        squares = self._squares
        squares.append(ret_1 * ret_1)
        n_vol = self._count if self._count < self._vol_window else self._vol_window
        realised = math.sqrt(self._vol_window / n_vol * sum(squares))
        volume_z = self._volume_z(v)
        spread = h - l
        if spread > 0:
            body = (c - o) / spread
            wicks = ((o if o < c else c) - l - (h - (o if o > c else c))) / spread
        else:
            body = wicks = 0.0
        context = context_at(t)
        relative = 0.0 if context.reference_ret is None else ret_15 - context.reference_ret
        peer = 0.0 if context.peer_ret is None else context.peer_ret
        to_close = float((bounds.close_ms - t) // MINUTE_MS - 1)
        clock_scale = self._clock_scale
        values = (ret_1, ret_5, ret_15, dist_fast, dist_slow, macd_hist, rsi, vwap_dist, high_dist, low_dist,
                  or_pos, scale * atr / c, realised, volume_z, body, wicks, relative, peer,
                  (minute + 1) / clock_scale, to_close / clock_scale,
                  1.0 - math.sqrt((to_close if to_close > 0.0 else 0.0) / clock_scale))
        closes.append(c)
        self._prev_close = c
        self._last_t = t
        clipped = tuple([lo if x < lo else hi if x > hi else x
                         for x, lo, hi in zip(values, self._low, self._high, strict=True)])
        return _new_row(FeatureRow, (t, clipped, real))

    def _anchors(self, minute: int, h: float, l: float, c: float, v: float,  # noqa: E741
                 atr_used: float) -> tuple[float, float, float, float]:
        typical = (h + l + c) / 3.0
        self._count += 1
        self._cum_volume += v
        self._cum_price_volume += typical * v
        self._cum_typical += typical
        if self._cum_volume > 0:
            vwap = self._cum_price_volume / self._cum_volume
        else:
            vwap = self._cum_typical / float(self._count)
        if h > self._high_of_day:
            self._high_of_day = h
        if l < self._low_of_day:
            self._low_of_day = l
        if minute < self._or_minutes or self._count == 1:
            if h > self._or_high:
                self._or_high = h
            if l < self._or_low:
                self._or_low = l
        width = self._or_high - self._or_low
        floor = self._floor * c
        width = width if width > floor else floor
        return ((c - vwap) / atr_used, (c - self._high_of_day) / atr_used,
                (c - self._low_of_day) / atr_used,
                2.0 * (c - (self._or_high + self._or_low) / 2.0) / width)

    def _volume_z(self, v: float) -> float:
        history = self._volumes
        n = len(history)
        z = 0.0
        if n:
            mean = sum(history) / n
            var = 0.0
            for x in history:  # oldest first, as the batch sum
                deviation = x - mean
                var += deviation * deviation
            var = var / n
            if n >= self._volume_min and var > (1e-6 * mean) ** 2 and var > 0:
                z = (v - mean) / math.sqrt(var)
        history.append(v)
        return z


_new_row = tuple.__new__  # FeatureRow without the NamedTuple constructor's Python-level call


def _weights(alpha: float) -> tuple[float, float]:
    return alpha, 1.0 - alpha
