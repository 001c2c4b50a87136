"""The action mask: which of the six actions the policy may choose. One rule, built on ``risk``.

* HOLD is always allowed.
* BUY_CALL / BUY_PUT only while flat, and only when :func:`risk.entry_blocked` says nothing blocks an
  entry: trading state ACTIVE, before the entry cutoff, outside the cooldown after an exit or
  stop-out, under the trades-per-day cap and the daily loss limit.
* TRIM_50 / TRIM_70 / EXIT only while a position is open, in every trading state (reducing risk is
  never blocked).

:func:`action_mask` serves one symbol (execution, policy API); :func:`action_masks` serves N
environments at once and gives identical rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scalper_shared.core.actions import ENTRY_ACTIONS, N_ACTIONS, REDUCING_ACTIONS, Action
from scalper_shared.core.enums import PositionSide, TradingState
from scalper_shared.core.risk import DEFAULT_RISK_CONFIG, RiskConfig, entry_blocked

_ENTRY_COLUMNS = [int(a) for a in ENTRY_ACTIONS]
_REDUCING_COLUMNS = [int(a) for a in REDUCING_ACTIONS]


def _position_open(position: Any) -> NDArray[np.bool_]:
    """Booleans (open) or PositionSide values/strings ("flat" is the only closed one)."""
    arr = np.asarray(position)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "UO":
        return np.asarray(arr.astype(str) != PositionSide.FLAT.value)
    raise TypeError(f"position must be booleans or PositionSide values, got dtype {arr.dtype}")


def action_mask(position: bool | PositionSide | str, *, minutes_to_close: float,
                trading_state: TradingState | str = TradingState.ACTIVE, trades_today: int = 0,
                minutes_since_exit: float = math.inf, exit_was_stop: bool = False,
                pnl_today: float = 0.0, config: RiskConfig = DEFAULT_RISK_CONFIG) -> NDArray[np.bool_]:
    """The (6,) boolean mask for one symbol; True means allowed. Indexed by :class:`Action`."""
    is_open = bool(_position_open(position))
    mask = np.zeros(N_ACTIONS, dtype=bool)
    mask[Action.HOLD] = True
    if is_open:
        mask[_REDUCING_COLUMNS] = True
        return mask
    blocked = entry_blocked(minutes_to_close, trades_today, minutes_since_exit, exit_was_stop,
                            pnl_today, trading_state, config)
    mask[_ENTRY_COLUMNS] = not bool(blocked)
    return mask


def action_masks(position: ArrayLike, *, minutes_to_close: ArrayLike,
                 trading_state: Any = TradingState.ACTIVE, trades_today: ArrayLike = 0,
                 minutes_since_exit: ArrayLike = math.inf, exit_was_stop: ArrayLike = False,
                 pnl_today: ArrayLike = 0.0, config: RiskConfig = DEFAULT_RISK_CONFIG) -> NDArray[np.bool_]:
    """(N, 6) masks for N environments; every argument is one value per row or broadcasts."""
    is_open = np.atleast_1d(_position_open(position))
    blocked = np.asarray(entry_blocked(minutes_to_close, trades_today, minutes_since_exit,
                                       exit_was_stop, pnl_today, trading_state, config))
    is_open, blocked = np.broadcast_arrays(is_open, blocked)
    masks = np.zeros((is_open.shape[0], N_ACTIONS), dtype=bool)
    masks[:, Action.HOLD] = True
    masks[:, _ENTRY_COLUMNS] = (~is_open & ~blocked)[:, None]
    masks[:, _REDUCING_COLUMNS] = is_open[:, None]
    return masks
