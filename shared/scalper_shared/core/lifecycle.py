"""One trade lifecycle: the position's side, why it was sold, and the per-bar rule, for every path.

The vectorised training environment (so every backtest and evaluation), the execution engine and
the paper broker all call this module; none of them orders the rules itself or matches a reason
string. A position is opened by an entry (``BUY_CALL`` / ``BUY_PUT`` at the bar's ask of the ATM
strike), reduced by the agent (``TRIM_50`` / ``TRIM_70`` / ``EXIT`` at the bar's bid) and by the
risk layer, and is closed when its last contract is sold; the sale that closes it names the trade's
:class:`ExitReason`.

The per-bar rule (:func:`bar_exits`), applied to an open position when a bar of its underlying
closes, marks the position at the modelled option bid of that bar and then, in this order:

1. **Stop.** The bid is down ``stop_loss_pct`` or more from the entry premium: every contract is
   sold, filled at the NEXT bar's bid (:data:`FillTiming.NEXT_BAR`; the decision is taken on this
   bar's close, a gap fills lower; on the session's last bar at that bar's bid). Nothing else runs
   on a stopped bar.
2. **Take-profit tiers**, in ascending order: every tier the bid has reached and that was not hit
   before sells its ``trim_fraction`` of the contracts then held (rounded half up, at least one), at
   THIS bar's bid. A bar that jumps past several tiers fires them one after another.
3. **Flatten window** (from ``flatten_minutes`` before the close): whatever is still held is sold
   at THIS bar's bid.

A bar where the stop fires and a tier or the flatten window would too is a stop; a bar where a
tier and the flatten window coincide sells the tier's fraction first (reason ``tpN``) and the rest
by the flatten window (``end_of_day``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scalper_shared.core.arrays import BoolArray, IntArray
from scalper_shared.core.enums import OptionRight, PositionSide
from scalper_shared.core.risk import (
    DEFAULT_RISK_CONFIG,
    MAX_TAKE_PROFIT_TIERS,
    RiskConfig,
    contracts_to_sell,
    stop_triggered,
    take_profit_tiers,
)


class Side(IntEnum):
    """The position's side, as the observation's position column and every trade record hold it."""

    FLAT = 0
    CALL = 1
    PUT = -1

    @classmethod
    def of_right(cls, right: OptionRight) -> Side:
        return cls.CALL if right is OptionRight.CALL else cls.PUT

    @classmethod
    def of_position(cls, side: PositionSide) -> Side:
        return {PositionSide.FLAT: cls.FLAT, PositionSide.CALL: cls.CALL, PositionSide.PUT: cls.PUT}[side]

    @property
    def right(self) -> OptionRight:
        if self is Side.FLAT:
            raise ValueError("a flat position has no option right")
        return OptionRight.CALL if self is Side.CALL else OptionRight.PUT


class ExitReason(StrEnum):
    """Why contracts of a position were sold. The values are what reports and stored trades show."""

    AGENT = "agent"
    """The policy's TRIM_50 / TRIM_70 / EXIT."""
    STOP = "stop"
    TP1 = "tp1"
    TP2 = "tp2"
    TP3 = "tp3"
    TP4 = "tp4"
    TP5 = "tp5"
    END_OF_DAY = "end_of_day"
    """The flatten window sold what was left."""
    KILL_SWITCH = "kill_switch"
    """The operator's kill switch (execution only)."""

    @classmethod
    def take_profit(cls, tier: int) -> ExitReason:
        """The reason of take-profit tier ``tier`` (1-based)."""
        if not 1 <= tier <= MAX_TAKE_PROFIT_TIERS:
            raise ValueError(f"take-profit tier must be 1..{MAX_TAKE_PROFIT_TIERS}, got {tier}")
        return cls(f"tp{tier}")

    @classmethod
    def parse(cls, value: str | None) -> ExitReason | None:
        """The reason a stored value names, or None (an entry, or a value of no reason)."""
        return cls._value2member_map_.get(value or "")  # type: ignore[return-value]

    @property
    def tier(self) -> int:
        """The take-profit tier number (0 for any other reason)."""
        return _TIERS.get(self, 0)

    @property
    def fill_timing(self) -> FillTiming:
        return FillTiming.NEXT_BAR if self is ExitReason.STOP else FillTiming.THIS_BAR


_TIERS = {ExitReason.take_profit(k): k for k in range(1, MAX_TAKE_PROFIT_TIERS + 1)}


class FillTiming(StrEnum):
    THIS_BAR = "this_bar"
    """At the bid of the bar the rule fired on."""
    NEXT_BAR = "next_bar"
    """At the bid of the underlying's next bar (the last bar's own on the session's last bar)."""




@dataclass(frozen=True, slots=True)
class BarExits:
    """What :func:`bar_exits` sells, per position (N positions)."""

    stop: BoolArray
    """(N,) the stop fired: every held contract goes, filled at the next bar's bid."""
    tier_contracts: IntArray
    """(N, tiers) contracts sold by each take-profit tier on this bar, at this bar's bid."""
    flatten_contracts: IntArray
    """(N,) contracts sold by the flatten window, at this bar's bid."""
    tiers_hit: IntArray
    """(N,) take-profit tiers hit after this bar."""


def bar_exits(entry_premium: ArrayLike, bid: ArrayLike, held: ArrayLike, tiers_hit: ArrayLike,
              flatten: ArrayLike, config: RiskConfig = DEFAULT_RISK_CONFIG) -> BarExits:
    """The per-bar rule (module doc) for N positions at once: stop, take-profit tiers, flatten.

    ``bid`` is the position's modelled bid on the bar; ``held`` its contracts (0: no position, nothing
    is sold); ``tiers_hit`` the tiers already taken; ``flatten`` whether the bar is in the flatten window.
    """
    entry = np.atleast_1d(np.asarray(entry_premium, dtype=np.float64))
    mark = np.atleast_1d(np.asarray(bid, dtype=np.float64))
    remaining = np.atleast_1d(np.asarray(held, dtype=np.int64)).copy()
    tiers = np.atleast_1d(np.asarray(tiers_hit, dtype=np.int64)).copy()
    n = remaining.size
    stop = np.asarray(stop_triggered(entry, mark, config), dtype=bool).reshape(n) & (remaining > 0)
    remaining[stop] = 0
    n_tiers = len(config.take_profit_tiers)
    sold = np.zeros((n, n_tiers), np.int64)
    for _ in range(n_tiers):
        tier, fraction = (np.atleast_1d(v) for v in take_profit_tiers(entry, mark, tiers, config))
        hit = (tier > 0) & (remaining > 0)
        if not hit.any():
            break
        rows = np.flatnonzero(hit)
        count = np.atleast_1d(contracts_to_sell(remaining[rows], fraction[rows]))
        sold[rows, tier[rows] - 1] = count
        remaining[rows] -= count
        tiers[rows] = tier[rows]
    in_window = np.broadcast_to(np.asarray(flatten, dtype=bool), (n,))
    flatten_sold = np.where(in_window & ~stop, remaining, 0)
    return BarExits(stop, sold, flatten_sold, tiers)


@dataclass(frozen=True, slots=True)
class PlannedExit:
    """One sale the per-bar rule asks for: why, how many contracts, and which bar's bid fills it."""

    reason: ExitReason
    contracts: int

    @property
    def timing(self) -> FillTiming:
        return self.reason.fill_timing


def position_exits(entry_premium: float, bid: float, held: int, tiers_hit: int, flatten: bool,
                   config: RiskConfig = DEFAULT_RISK_CONFIG) -> list[PlannedExit]:
    """:func:`bar_exits` for one position, as the sales in the rule's order (empty: nothing to sell)."""
    exits = bar_exits(entry_premium, bid, held, tiers_hit, flatten, config)
    if bool(exits.stop[0]):
        return [PlannedExit(ExitReason.STOP, int(held))]
    planned = [PlannedExit(ExitReason.take_profit(k + 1), int(n))
               for k, n in enumerate(exits.tier_contracts[0].tolist()) if n > 0]
    if int(exits.flatten_contracts[0]) > 0:
        planned.append(PlannedExit(ExitReason.END_OF_DAY, int(exits.flatten_contracts[0])))
    return planned


def side_of_entry(is_call: Any) -> Any:
    """``Side.CALL`` where the entry buys a call, else ``Side.PUT`` (vectorised)."""
    return np.where(np.asarray(is_call, dtype=bool), int(Side.CALL), int(Side.PUT))
