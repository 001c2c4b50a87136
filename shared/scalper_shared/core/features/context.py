"""Cross-symbol context: the reference's and the peer's returns at a given minute.

One rule for both paths: the return of another symbol at minute ``m`` over ``h`` minutes is
``1000*ln(C(m)/C(m-h))`` where ``C(x)`` is that symbol's close of its last real bar at or before ``x``
in the same session (forward fill), or its first open of the session when ``x`` lies before its
first bar. The return is absent (None; the feature is then 0) when the symbol has no bar at or
before ``m`` in the session. Inside that symbol's own grid this equals its own ``ret_h`` feature.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scalper_shared.core.arrays import FloatArray, IntArray
from scalper_shared.core.features.numeric import libm_log
from scalper_shared.core.features.sessions import (
    MINUTE_MS,
    SessionBars,
    SessionBounds,
)
from scalper_shared.core.features.spec import PARAMS, Params


@dataclass(frozen=True, slots=True)
class MarketContext:
    """The context of one symbol-minute: returns in per-mille, None when the other symbol is absent."""

    reference_ret: float | None = None
    peer_ret: float | None = None


NO_CONTEXT = MarketContext()
ContextLookup = Callable[[int], MarketContext]


def no_context(minute_ms: int) -> MarketContext:
    return NO_CONTEXT


def context_returns(minutes: IntArray, other: SessionBars | None, horizon: int,
                    scale: float = PARAMS.return_scale) -> FloatArray:
    """Batch form of the rule above for one session: NaN where the other symbol is absent."""
    out = np.full(len(minutes), np.nan)
    if other is None:
        return out
    real_t = other.bars.t[other.real]
    real_c = other.bars.c[other.real]
    now = np.searchsorted(real_t, minutes, side="right") - 1
    past = np.searchsorted(real_t, minutes - horizon * MINUTE_MS, side="right") - 1
    present = now >= 0
    past_close = np.where(past >= 0, real_c[np.maximum(past, 0)], other.bars.o[0])
    ratio = real_c[np.maximum(now, 0)] / past_close
    out[present] = scale * libm_log(ratio[present])
    return out


@dataclass(slots=True)
class _SessionCloses:
    bounds: SessionBounds
    first_open: float
    minutes: list[int] = field(default_factory=list)
    closes: list[float] = field(default_factory=list)


class ContextTracker:
    """Incremental form of the rule: remembers each symbol's real closes of the current session.

    Call ``observe`` for every regular-hours bar of a minute before computing any symbol's
    features for that minute; ``lookup(symbol)`` returns the context function ``update`` takes.
    """

    def __init__(self, reference: str | None, params: Params = PARAMS) -> None:
        self._reference = reference
        self._params = params
        self._closes: dict[str, _SessionCloses] = {}

    def observe(self, symbol: str, bounds: SessionBounds, t_ms: int, open_: float, close: float) -> None:
        """Record one real regular-hours bar of ``symbol`` (older or repeated minutes are ignored)."""
        state = self._closes.get(symbol)
        if state is None or state.bounds != bounds:
            state = self._closes[symbol] = _SessionCloses(bounds, open_)
        if state.minutes and t_ms <= state.minutes[-1]:
            return
        state.minutes.append(t_ms)
        state.closes.append(close)

    def symbol_return(self, symbol: str | None, minute_ms: int, horizon: int) -> float | None:
        state = self._closes.get(symbol) if symbol else None
        if state is None or not state.bounds.open_ms <= minute_ms < state.bounds.close_ms:
            return None
        now = bisect.bisect_right(state.minutes, minute_ms) - 1
        if now < 0:
            return None
        past = bisect.bisect_right(state.minutes, minute_ms - horizon * MINUTE_MS) - 1
        past_close = state.closes[past] if past >= 0 else state.first_open
        return self._params.return_scale * math.log(state.closes[now] / past_close)

    def lookup(self, symbol: str, peer: str | None) -> ContextLookup:
        """The context function of ``symbol``: reference return (None for the reference itself)."""
        reference = None if self._reference == symbol else self._reference
        p = self._params

        def context_at(minute_ms: int) -> MarketContext:
            return MarketContext(
                self.symbol_return(reference, minute_ms, p.relative_strength_horizon),
                self.symbol_return(peer, minute_ms, p.peer_return_horizon),
            )

        return context_at
