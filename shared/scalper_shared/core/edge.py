"""The planted edge of the synthetic market, defined once: the generator plants it, the ``edge_rule``
baseline trades it, the docs state its after-cost expectancy.

``none`` (the default) plants nothing. ``momentum``: after a 5-minute move of the market factor
beyond ``trigger_sigma`` of its own standard deviation (the sum of the five minutes' sigmas in
quadrature), the next ``drift_minutes`` minutes drift in the move's direction by ``drift_sigma``
standard deviations per minute. Events do not overlap or chain: no trigger during a drift or in the
``lookback_minutes`` after it (a move made of planted drift never triggers more drift). QQQ
carries the factor (1-minute correlation ~0.92), so it inherits the drift; I:SPX follows SPY.

The rule that trades it sees only the observation: the 5-minute return over the ATR
(``ret_5 / atr_pct``, both per mille of price) at or beyond ``rule_trigger_atr``, in the move's
direction, held ``rule_hold_minutes`` minutes. See ``docs/rewards.md`` (section "The planted edge")
for the measured expectancy of that rule after spread, commission and theta.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from scalper_shared.core.arrays import FloatArray


class MarketEdge(StrEnum):
    NONE = "none"
    MOMENTUM = "momentum"


MARKET_EDGES: tuple[str, ...] = tuple(e.value for e in MarketEdge)


@dataclass(frozen=True, slots=True)
class MomentumEdge:
    """The ``momentum`` edge: how the generator plants it and how the rule reads it."""

    lookback_minutes: int = 5
    trigger_sigma: float = 3.25
    drift_minutes: int = 4
    drift_sigma: float = 2.0
    rule_trigger_atr: float = 4.0
    rule_hold_minutes: int = 4


MOMENTUM_EDGE = MomentumEdge()


def momentum_edge_drift(sigma: FloatArray, base: FloatArray,
                        edge: MomentumEdge = MOMENTUM_EDGE) -> FloatArray:
    """Extra per-minute drift (sigma units) planted on a path whose returns are ``sigma * (base + drift)``.

    Sequential by nature (a trigger depends on returns that carry earlier drift): one pass over the
    session's minutes.
    """
    minutes = len(sigma)
    drift = np.zeros(minutes)
    returns = np.empty(minutes)
    variance = sigma**2
    lookback = edge.lookback_minutes
    active_until = -1
    for t in range(minutes):
        returns[t] = sigma[t] * (base[t] + drift[t])
        if t + 1 < lookback or t <= active_until:
            continue
        move = returns[t + 1 - lookback:t + 1].sum()
        scale = np.sqrt(variance[t + 1 - lookback:t + 1].sum())
        if abs(move) > edge.trigger_sigma * scale:
            end = min(minutes, t + 1 + edge.drift_minutes)
            drift[t + 1:end] += np.sign(move) * edge.drift_sigma
            active_until = end - 1 + lookback   # the next trigger's move must not contain this drift
    return drift


def edge_rule_side(ret_5: npt.ArrayLike, atr_pct: npt.ArrayLike,
                   edge: MomentumEdge = MOMENTUM_EDGE) -> npt.NDArray[np.int8]:
    """+1 (buy a call), -1 (buy a put) or 0 from the observation's ``ret_5`` and ``atr_pct`` features."""
    move = np.asarray(ret_5, dtype=np.float64)
    atr = np.asarray(atr_pct, dtype=np.float64)
    in_atr = np.where(atr > 0, move / np.where(atr > 0, atr, 1.0), 0.0)
    return np.where(in_atr >= edge.rule_trigger_atr, 1, np.where(in_atr <= -edge.rule_trigger_atr, -1, 0)
                    ).astype(np.int8)
