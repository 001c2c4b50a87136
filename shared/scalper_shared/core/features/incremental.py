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


class _Smoother:
    """``y = a*x + (1-a)*y`` seeded so that the first output is ``a*x0 + (1-a)*x0`` (as lfilter)."""

    __slots__ = ("alpha", "decay", "value")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.decay = 1.0 - alpha
        self.value: float | None = None

    def update(self, x: float) -> float:
        previous = x if self.value is None else self.value
        self.value = self.alpha * x + self.decay * previous
        return self.value


class IncrementalFeatures:
    """Per-symbol streaming state. ``update(bar, context_at)`` returns the rows it completes."""

    def __init__(self, symbol: str, spec: FeatureSpec = FEATURE_SPEC) -> None:
        self.symbol = symbol
        self.spec = spec
        self._bounds: SessionBounds | None = None
        self._low = [f.low for f in spec.market]
        self._high = [f.high for f in spec.market]
        self._reset_session(None, 0.0)

    @property
    def last_minute(self) -> int | None:
        return self._last_t

    def _reset_session(self, bounds: SessionBounds | None, first_open: float) -> None:
        p = self.spec.params
        self._bounds = bounds
        self._last_t: int | None = None
        self._prev_close = first_open
        self._closes: deque[float] = deque([first_open] * max(p.return_horizons), maxlen=max(p.return_horizons))
        self._ema_fast = _Smoother(p.ema_alpha(p.ema_fast))
        self._ema_slow = _Smoother(p.ema_alpha(p.ema_slow))
        self._macd_fast = _Smoother(p.ema_alpha(p.macd_fast))
        self._macd_slow = _Smoother(p.ema_alpha(p.macd_slow))
        self._macd_signal = _Smoother(p.ema_alpha(p.macd_signal))
        self._atr = _Smoother(p.wilder_alpha(p.atr_period))
        self._gain = _Smoother(p.wilder_alpha(p.rsi_period))
        self._loss = _Smoother(p.wilder_alpha(p.rsi_period))
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
        bounds = self._session_for(bar.t)
        if bounds is None:
            return []
        if bounds != self._bounds:
            self._reset_session(bounds, bar.o)
        elif self._last_t is not None and bar.t <= self._last_t:
            logger.debug("symbol=%s ignores bar %s at or before %s", self.symbol, bar.t, self._last_t)
            return []
        rows = []
        if self._last_t is not None:
            flat = self._prev_close
            for t in range(self._last_t + MINUTE_MS, bar.t, MINUTE_MS):
                rows.append(self._step(t, flat, flat, flat, flat, 0.0, False, context_at))
        rows.append(self._step(bar.t, bar.o, bar.h, bar.l, bar.c, bar.v, True, context_at))
        return rows

    def replay(self, bars: Iterable[BarInput], context_at: ContextLookup = no_context) -> list[FeatureRow]:
        """Feed many bars in order (e.g. to rebuild state after a restart)."""
        rows: list[FeatureRow] = []
        for bar in bars:
            rows.extend(self.update(bar, context_at))
        return rows

    def _session_for(self, t: int) -> SessionBounds | None:
        bounds = self._bounds
        if bounds is not None and bounds.open_ms <= t < bounds.close_ms:
            return bounds
        return session_of(t)

    def _step(self, t: int, o: float, h: float, l: float, c: float, v: float,  # noqa: E741
              real: bool, context_at: ContextLookup) -> FeatureRow:
        p = self.spec.params
        assert self._bounds is not None
        minute = (t - self._bounds.open_ms) // MINUTE_MS
        prev_close = self._prev_close
        tr = max(h, prev_close) - min(l, prev_close)
        atr = self._atr.update(tr)
        atr_used = max(atr, p.atr_floor_fraction * c)
        closes = self._closes
        scale = p.return_scale
        ret_1 = scale * math.log(c / closes[-1])
        ret_5 = scale * math.log(c / closes[-5])
        ret_15 = scale * math.log(c / closes[-15])
        dist_fast = (c - self._ema_fast.update(c)) / atr_used
        dist_slow = (c - self._ema_slow.update(c)) / atr_used
        macd = self._macd_fast.update(c) - self._macd_slow.update(c)
        macd_hist = (macd - self._macd_signal.update(macd)) / atr_used
        change = c - prev_close
        gain = self._gain.update(max(change, 0.0))
        loss = self._loss.update(max(-change, 0.0))
        rsi = (gain - loss) / (gain + loss) if gain + loss > 0 else 0.0
        anchors = self._anchors(minute, h, l, c, v, atr_used)
        squares = self._squares
        squares.append(ret_1 * ret_1)
        n_vol = min(self._count, p.realised_vol_window)
        realised = math.sqrt(p.realised_vol_window / n_vol * sum(squares))
        volume_z = self._volume_z(v)
        spread = h - l
        body = (c - o) / spread if spread > 0 else 0.0
        wicks = ((min(o, c) - l) - (h - max(o, c))) / spread if spread > 0 else 0.0
        context = context_at(t)
        relative = 0.0 if context.reference_ret is None else ret_15 - context.reference_ret
        peer = 0.0 if context.peer_ret is None else context.peer_ret
        to_close = float((self._bounds.close_ms - t) // MINUTE_MS - 1)
        values = (ret_1, ret_5, ret_15, dist_fast, dist_slow, macd_hist, rsi, *anchors,
                  scale * atr / c, realised, volume_z, body, wicks, relative, peer,
                  (minute + 1) / p.clock_scale_minutes, to_close / p.clock_scale_minutes,
                  1.0 - math.sqrt(max(to_close, 0.0) / p.clock_scale_minutes))
        closes.append(c)
        self._prev_close = c
        self._last_t = t
        clipped = [lo if x < lo else hi if x > hi else x for x, lo, hi in zip(values, self._low, self._high, strict=True)]
        return FeatureRow(t, tuple(clipped), real)

    def _anchors(self, minute: int, h: float, l: float, c: float, v: float,  # noqa: E741
                 atr_used: float) -> tuple[float, float, float, float]:
        p = self.spec.params
        typical = (h + l + c) / 3.0
        self._count += 1
        self._cum_volume += v
        self._cum_price_volume += typical * v
        self._cum_typical += typical
        if self._cum_volume > 0:
            vwap = self._cum_price_volume / self._cum_volume
        else:
            vwap = self._cum_typical / float(self._count)
        self._high_of_day = max(self._high_of_day, h)
        self._low_of_day = min(self._low_of_day, l)
        if minute < p.opening_range_minutes or self._count == 1:
            self._or_high = max(self._or_high, h)
            self._or_low = min(self._or_low, l)
        width = max(self._or_high - self._or_low, p.atr_floor_fraction * c)
        return ((c - vwap) / atr_used, (c - self._high_of_day) / atr_used,
                (c - self._low_of_day) / atr_used,
                2.0 * (c - (self._or_high + self._or_low) / 2.0) / width)

    def _volume_z(self, v: float) -> float:
        p = self.spec.params
        history = self._volumes
        n = len(history)
        z = 0.0
        if n:
            mean = sum(history) / n
            var = 0.0
            for x in history:
                deviation = x - mean
                var += deviation * deviation
            var = var / n
            if n >= p.volume_min_history and var > (1e-6 * mean) ** 2 and var > 0:
                z = (v - mean) / math.sqrt(var)
        history.append(v)
        return z
