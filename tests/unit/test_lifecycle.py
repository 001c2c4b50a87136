"""The one trade lifecycle: the per-bar rule's order where stop, take-profit tiers and the flatten
window coincide, its fill timing, and the same sales from the environment and the execution engine."""

from __future__ import annotations

import numpy as np
import pytest

from scalper_execution.brokers.paper import PaperBroker, PaperBrokerConfig
from scalper_shared.core.actions import Action
from scalper_shared.core.lifecycle import (
    ExitReason,
    FillTiming,
    PlannedExit,
    Side,
    bar_exits,
    position_exits,
)
from scalper_shared.core.risk import RiskConfig, TakeProfitTier
from scalper_shared.schema.messages import OptionRight, OrderSide, PositionSide, SubmitOrder
from scalper_trainer.env import TradingEnv
from tests.unit.env_support import hand_config, hand_episodes
from tests.unit.execution_support import bar, decision, fill_all, make_engine

RISK = RiskConfig()  # stop -15%; tiers +20% (trim 50%), +50% (70%), +100% (all)
ONE_TIER = RiskConfig(take_profit_tiers=(TakeProfitTier(gain=0.2, trim_fraction=0.5),), stop_loss_pct=0.99)


def test_a_stop_on_a_flatten_bar_is_a_stop_for_every_contract_filled_at_the_next_bar() -> None:
    planned = position_exits(1.00, 0.80, held=10, tiers_hit=0, flatten=True, config=RISK)
    assert planned == [PlannedExit(ExitReason.STOP, 10)]
    assert planned[0].timing is FillTiming.NEXT_BAR


def test_a_stop_after_a_take_profit_sells_what_is_left_and_no_tier_fires() -> None:
    assert position_exits(1.00, 0.85, held=5, tiers_hit=1, flatten=False, config=RISK) == [
        PlannedExit(ExitReason.STOP, 5)]


def test_a_tier_on_a_flatten_bar_trims_first_then_the_window_sells_the_rest_at_this_bar() -> None:
    planned = position_exits(1.00, 1.25, held=10, tiers_hit=0, flatten=True, config=RISK)
    assert planned == [PlannedExit(ExitReason.TP1, 5), PlannedExit(ExitReason.END_OF_DAY, 5)]
    assert {p.timing for p in planned} == {FillTiming.THIS_BAR}


def test_a_jump_past_every_tier_fires_them_in_order_on_the_contracts_then_held() -> None:
    # 10 -> TP1 sells 5 (50%), TP2 sells 4 (70% of 5, rounded half up), TP3 sells the last one
    assert position_exits(1.00, 2.10, held=10, tiers_hit=0, flatten=True, config=RISK) == [
        PlannedExit(ExitReason.TP1, 5), PlannedExit(ExitReason.TP2, 4), PlannedExit(ExitReason.TP3, 1)]


def test_tiers_already_taken_do_not_fire_again() -> None:
    assert position_exits(1.00, 1.60, held=5, tiers_hit=2, flatten=False, config=RISK) == []
    assert position_exits(1.00, 1.60, held=5, tiers_hit=1, flatten=False, config=RISK) == [
        PlannedExit(ExitReason.TP2, 4)]


def test_a_quiet_bar_outside_the_window_sells_nothing_and_a_flat_position_never_sells() -> None:
    assert position_exits(1.00, 1.05, held=10, tiers_hit=0, flatten=False, config=RISK) == []
    assert position_exits(1.00, 0.50, held=0, tiers_hit=0, flatten=True, config=RISK) == []


def test_the_vectorised_rule_equals_the_rule_one_position_at_a_time() -> None:
    rng = np.random.default_rng(7)
    entry = rng.uniform(0.5, 3.0, 400)
    bid = entry * rng.uniform(0.7, 2.3, 400)
    held = rng.integers(0, 12, 400)
    tiers = rng.integers(0, 4, 400)
    flatten = rng.random(400) < 0.3
    exits = bar_exits(entry, bid, held, tiers, flatten, RISK)
    for k in range(400):
        planned = position_exits(entry[k], bid[k], held[k], tiers[k], flatten[k], RISK)
        sold = {p.reason: p.contracts for p in planned}
        assert bool(exits.stop[k]) == (ExitReason.STOP in sold)
        for t in range(3):
            assert exits.tier_contracts[k, t] == sold.get(ExitReason.take_profit(t + 1), 0)
        assert exits.flatten_contracts[k] == sold.get(ExitReason.END_OF_DAY, 0)
        assert sum(sold.values()) <= held[k]
        if flatten[k]:
            assert sum(sold.values()) == held[k], "the flatten window leaves nothing open"


def test_exit_reasons_parse_only_their_own_values() -> None:
    assert ExitReason.parse("stop") is ExitReason.STOP
    assert ExitReason.parse("tp2") is ExitReason.TP2 and ExitReason.TP2.tier == 2
    assert ExitReason.parse("policy:BUY_CALL") is None and ExitReason.parse(None) is None
    with pytest.raises(ValueError):
        ExitReason.take_profit(6)
    with pytest.raises(ValueError):
        RiskConfig(take_profit_tiers=tuple(TakeProfitTier(gain=0.1 * k, trim_fraction=0.1) for k in range(1, 7)))


def test_the_side_enum_is_the_observation_column_and_maps_rights_and_position_sides() -> None:
    assert [int(s) for s in (Side.FLAT, Side.CALL, Side.PUT)] == [0, 1, -1]
    assert Side.of_right(OptionRight.PUT) is Side.PUT and Side.CALL.right is OptionRight.CALL
    assert Side.of_position(PositionSide.FLAT) is Side.FLAT


def test_the_paper_broker_times_fills_by_the_exit_reason() -> None:
    def order(reason: str, side: OrderSide = OrderSide.SELL) -> SubmitOrder:
        return SubmitOrder(client_order_id="c", symbol="SPY", option_symbol="SPY250701C00600000",
                           right=OptionRight.CALL, side=side, contracts=1, reason=reason)

    broker = PaperBroker.__new__(PaperBroker)  # the timing needs no database
    broker.config = PaperBrokerConfig(deterministic=True)
    assert broker.fills_at_next_bar(order(ExitReason.STOP.value))
    assert not any(broker.fills_at_next_bar(order(r.value)) for r in ExitReason if r is not ExitReason.STOP)
    assert not broker.fills_at_next_bar(order("policy:BUY_CALL", OrderSide.BUY))


# -- the same bar through the environment and the execution engine ------------------------------

FLATTEN_ROW = 384
"""The bar closing at 15:55 ET: the first of the flatten window (5 minutes before a 16:00 close)."""


def test_the_environment_trims_the_tier_then_flattens_on_a_coinciding_bar() -> None:
    closes = [500.0] * FLATTEN_ROW + [506.0]
    env = TradingEnv(hand_episodes(closes), hand_config(358, risk=ONE_TIER))
    env.reset(seed=0)
    env.state.fills = []
    env.step(Action.BUY_CALL)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(Action.HOLD)
    exits = [(f.reason, f.contracts, f.row - int(env.state.tape.first_row[0])) for f in env.state.fills[1:]]
    assert exits == [(ExitReason.TP1, 5, FLATTEN_ROW), (ExitReason.END_OF_DAY, 5, FLATTEN_ROW)]


def test_execution_trims_the_tier_then_flattens_on_a_coinciding_bar() -> None:
    engine = make_engine(ONE_TIER, contracts=10)
    for n in range(5):
        engine.on_bar(bar("SPY", n, 600.0))
    effects = engine.on_decision(decision("SPY", 5, Action.BUY_CALL), "dec")
    fill_all(engine, effects)
    for n in range(6, FLATTEN_ROW):
        assert not engine.on_bar(bar("SPY", n, 600.0)).orders, n
    effects = engine.on_bar(bar("SPY", FLATTEN_ROW, 606.0))
    assert [(ExitReason.parse(o.order.reason), o.order.contracts) for o in effects.orders] == [
        (ExitReason.TP1, 5), (ExitReason.END_OF_DAY, 5)]
    fill_all(engine, effects)
    assert not any(engine.open_positions())
