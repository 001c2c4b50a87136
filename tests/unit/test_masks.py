from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from scalper_shared.core.actions import Action
from scalper_shared.core.masks import action_mask, action_masks
from scalper_shared.core.risk import RiskConfig
from scalper_shared.schema.messages import PositionSide, TradingState

ENTRIES = [Action.BUY_CALL, Action.BUY_PUT]
REDUCING = [Action.TRIM_50, Action.TRIM_70, Action.EXIT]


def _allowed(mask: np.ndarray) -> set[Action]:
    return {Action(i) for i in np.flatnonzero(mask)}


def test_flat_in_an_active_session_may_hold_or_buy() -> None:
    mask = action_mask(PositionSide.FLAT, minutes_to_close=200)
    assert mask.shape == (6,) and mask.dtype == bool
    assert _allowed(mask) == {Action.HOLD, *ENTRIES}


def test_buy_call_is_masked_while_a_position_is_open() -> None:
    for side in (PositionSide.CALL, PositionSide.PUT, True):
        assert _allowed(action_mask(side, minutes_to_close=200)) == {Action.HOLD, *REDUCING}


def test_trim_and_exit_are_masked_while_flat() -> None:
    mask = action_mask(False, minutes_to_close=200)
    assert not mask[REDUCING].any()


def test_no_entry_after_the_cutoff() -> None:
    assert action_mask("flat", minutes_to_close=31)[Action.BUY_CALL]
    assert _allowed(action_mask("flat", minutes_to_close=30)) == {Action.HOLD}


def test_exits_stay_allowed_after_the_cutoff_and_in_the_flatten_window() -> None:
    assert _allowed(action_mask("put", minutes_to_close=2)) == {Action.HOLD, *REDUCING}


def test_no_entry_during_the_cooldown_after_a_stop_out() -> None:
    assert _allowed(action_mask("flat", minutes_to_close=200, minutes_since_exit=5, exit_was_stop=True)) == \
        {Action.HOLD}
    assert action_mask("flat", minutes_to_close=200, minutes_since_exit=10, exit_was_stop=True)[Action.BUY_PUT]


def test_no_entry_past_the_trades_per_day_cap() -> None:
    assert _allowed(action_mask("flat", minutes_to_close=200, trades_today=20)) == {Action.HOLD}
    config = RiskConfig(max_trades_per_day=25)
    assert action_mask("flat", minutes_to_close=200, trades_today=20, config=config)[Action.BUY_CALL]


def test_no_entry_past_the_daily_loss_limit() -> None:
    assert _allowed(action_mask("flat", minutes_to_close=200, pnl_today=-1000.0)) == {Action.HOLD}


@pytest.mark.parametrize("state", [TradingState.REDUCING, TradingState.HALTED])
def test_no_entry_unless_trading_is_active_but_exits_stay_allowed(state: TradingState) -> None:
    assert _allowed(action_mask("flat", minutes_to_close=200, trading_state=state)) == {Action.HOLD}
    assert _allowed(action_mask("call", minutes_to_close=200, trading_state=state)) == {Action.HOLD, *REDUCING}


def test_hold_is_always_allowed_everywhere() -> None:
    masks = action_masks([False, True, False], minutes_to_close=[0, 0, 500],
                         trading_state=["halted", "halted", "active"], trades_today=[99, 99, 0])
    assert masks[:, Action.HOLD].all()


def test_vectorised_masks_equal_scalar_masks_on_every_combination() -> None:
    grid = list(itertools.product(
        [False, True], list(TradingState), [200.0, 30.5, 30.0, 4.0], [0, 19, 20],
        [math.inf, 1.0, 5.0, 12.0], [False, True], [0.0, -1000.0],
    ))
    columns = list(zip(*grid, strict=True))
    vector = action_masks(np.array(columns[0]), trading_state=list(columns[1]),
                          minutes_to_close=np.array(columns[2]), trades_today=np.array(columns[3]),
                          minutes_since_exit=np.array(columns[4]), exit_was_stop=np.array(columns[5]),
                          pnl_today=np.array(columns[6]))
    assert vector.shape == (len(grid), 6)
    for row, (is_open, state, minutes, trades, since, stop, pnl) in zip(vector, grid, strict=True):
        scalar = action_mask(is_open, trading_state=state, minutes_to_close=minutes, trades_today=trades,
                             minutes_since_exit=since, exit_was_stop=stop, pnl_today=pnl)
        assert np.array_equal(row, scalar)
    assert vector[:, Action.BUY_CALL].any() and not vector[:, Action.BUY_CALL].all()


def test_vectorised_masks_broadcast_scalar_arguments() -> None:
    masks = action_masks(np.array([PositionSide.FLAT, PositionSide.CALL]), minutes_to_close=100)
    assert masks.tolist() == [[True, True, True, False, False, False], [True, False, False, True, True, True]]
