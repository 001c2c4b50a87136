"""The risk engine on its own: stops on every bar, take-profits, trading states, limits, cooldowns."""

from __future__ import annotations

import numpy as np
import pytest

from scalper_execution.contracts import occ_symbol, parse_occ
from scalper_execution.engine import ORDER_RATE_LIMIT, client_order_id
from scalper_shared.core.actions import Action
from scalper_shared.core.lifecycle import ExitReason
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG
from scalper_shared.core.risk import RiskConfig, RiskReason, TakeProfitTier
from scalper_shared.schema.messages import OrderSide, TradingState, TradingStateChanged
from tests.unit.execution_support import FakeMonotonic, bar, decision, fill_all, make_engine, minute


def warm_up(engine, symbol: str = "SPY", price: float = 600.0, bars: int = 5, wiggle: float = 0.0) -> int:  # noqa: ANN001
    """``bars`` bars at ``price`` (alternating +-``wiggle``, so the realised vol is not zero)."""
    for n in range(bars):
        engine.on_bar(bar(symbol, n, price + (wiggle if n % 2 else -wiggle)))
    return bars


def open_call(engine, symbol: str = "SPY", n: int = 5, price: float = 600.0) -> float:  # noqa: ANN001
    effects = engine.on_decision(decision(symbol, n, Action.BUY_CALL), f"dec-{symbol}-{n}")
    assert [o.order.side for o in effects.orders] == [OrderSide.BUY], effects.denials()
    (fill,) = fill_all(engine, effects)
    return fill.price


def test_occ_symbols_round_trip() -> None:
    from datetime import date

    from scalper_shared.schema.messages import OptionRight

    assert occ_symbol("SPY", date(2025, 7, 1), OptionRight.CALL, 617) == "SPY250701C00617000"
    assert occ_symbol("I:SPX", date(2025, 7, 1), OptionRight.PUT, 6205) == "SPXW250701P06205000"
    parts = parse_occ("SPY250701C00617500")
    assert (parts.root, parts.right.value, parts.strike) == ("SPY", "call", 617.5)


def test_client_order_ids_are_deterministic_per_cause() -> None:
    assert client_order_id("decision", "e1") == client_order_id("decision", "e1")
    assert client_order_id("decision", "e1") != client_order_id("decision", "e2")


def test_stop_fires_on_the_breaching_bar_even_when_the_policy_holds() -> None:
    engine = make_engine(RiskConfig(take_profit_tiers=()))
    start = warm_up(engine)
    entry = open_call(engine, n=start)
    price = 600.0
    for n in range(start + 1, 60):
        price -= 0.25
        assert not engine.on_decision(decision("SPY", n, Action.HOLD), f"hold-{n}").orders
        effects = engine.on_bar(bar("SPY", n, price))
        bid = engine.quote_option(next(iter(engine.open_positions())).option_symbol).bid
        breached = bid <= entry * (1 - 0.15) + 1e-9
        assert bool(effects.orders) == breached, f"bar {n}: bid {bid} entry {entry}"
        if breached:
            (stop,) = effects.orders
            assert stop.order.reason == ExitReason.STOP and stop.order.contracts == 1
            return
    raise AssertionError("the path never breached the stop")


def test_a_redelivered_bar_or_decision_makes_no_second_order() -> None:
    engine = make_engine()
    n = warm_up(engine)
    first = engine.on_decision(decision("SPY", n, Action.BUY_CALL), "dec-1")
    again = engine.on_decision(decision("SPY", n, Action.BUY_CALL), "dec-1")
    assert len(first.orders) == 1 and not again.orders and not again.events
    assert not engine.on_bar(bar("SPY", n - 1, 500.0)).events  # old bar: ignored


@pytest.mark.slow
def test_no_realised_loss_is_worse_than_the_stop_plus_the_modelled_gap_over_1000_paths() -> None:
    """The bound comes from the premium model's bid on the first bar that breaches the stop line (the
    modelled gap), never from the fill: a stop sent late, selling part of the position, or filling
    below the breaching bar's bid makes a path lose more than it."""
    rng = np.random.default_rng(7)
    config = RiskConfig()
    fee = 2 * DEFAULT_PREMIUM_CONFIG.commission_per_contract
    stops = 0
    for path in range(1000):
        engine = make_engine(config, contracts=4)
        price = 600.0
        for n in range(330, 335):  # 15:00 ET onwards: flattened at 15:55
            engine.on_bar(bar("SPY", n, price))
        entry = open_call(engine, n=335)
        stop_line = entry * (1 - config.stop_loss_pct)
        option = next(iter(engine.open_positions())).option_symbol
        trade_pnl = -4 * DEFAULT_PREMIUM_CONFIG.commission_per_contract
        breach_bid: float | None = None  # the modelled bid on the first bar at or under the stop line
        stop_seen = False
        jumps = rng.random(60) < 0.05
        for n in range(336, 390):
            price *= float(np.exp(rng.normal(0, 0.0012) + jumps[n - 336] * rng.normal(0, 0.006)))
            effects = engine.on_bar(bar("SPY", n, price))
            bid = engine.quote_option(option).bid
            stop_orders = [o for o in effects.orders if o.order.reason == ExitReason.STOP]
            if bid <= stop_line + 1e-9 and breach_bid is None and any(engine.open_positions()):
                breach_bid = bid
                assert stop_orders, f"path {path} bar {n}: breached without a stop order"
            for fill in fill_all(engine, effects):
                trade_pnl += (fill.price - entry) * fill.contracts * 100 - fill.commission
                stop_seen |= any(o.order.client_order_id == fill.client_order_id for o in stop_orders)
            if not any(engine.open_positions()):
                break
        assert not any(engine.open_positions()), f"path {path} still open after the flatten window"
        stops += stop_seen
        gap = max(0.0, stop_line - breach_bid) if breach_bid is not None else 0.0
        bound = -4 * ((config.stop_loss_pct * entry + gap) * 100 + fee)
        assert trade_pnl >= bound - 1e-6, f"path {path}: {trade_pnl:.2f} worse than {bound:.2f}"
    assert stops > 100, f"only {stops} paths stopped out: the test would not exercise the stop"


def test_take_profit_tiers_trim_in_order() -> None:
    tiers = (TakeProfitTier(gain=0.2, trim_fraction=0.5), TakeProfitTier(gain=0.5, trim_fraction=1.0))
    engine = make_engine(RiskConfig(take_profit_tiers=tiers), contracts=4)
    n = warm_up(engine)
    open_call(engine, n=n)
    reasons = []
    for k, price in enumerate((601.0, 602.0, 603.0, 604.0, 606.0, 608.0)):
        effects = engine.on_bar(bar("SPY", n + 1 + k, price))
        reasons += [(o.order.reason, o.order.contracts) for o in effects.orders]
        fill_all(engine, effects)
    assert reasons[:2] == [(ExitReason.TP1, 2), (ExitReason.TP2, 2)]
    assert not any(engine.open_positions())


def test_halted_blocks_entries_and_allows_exits() -> None:
    engine = make_engine()
    n = warm_up(engine)
    open_call(engine, n=n)
    warm_up(engine, "QQQ", 500.0, bars=n + 1)
    changed = engine.set_trading_state(TradingState.HALTED, "test").events
    assert isinstance(changed[0], TradingStateChanged) and changed[0].current is TradingState.HALTED
    entry = engine.on_decision(decision("QQQ", n + 1, Action.BUY_PUT), "q")
    assert [d.reason for d in entry.denials()] == [RiskReason.TRADING_HALTED]
    exit_ = engine.on_decision(decision("SPY", n + 1, Action.EXIT), "x")
    assert [o.order.side for o in exit_.orders] == [OrderSide.SELL]


def test_reducing_only_reduces() -> None:
    engine = make_engine(contracts=4)
    n = warm_up(engine)
    open_call(engine, n=n)
    warm_up(engine, "QQQ", 500.0, bars=n + 1)
    engine.set_trading_state(TradingState.REDUCING, "test")
    assert [d.reason for d in engine.on_decision(decision("QQQ", n, Action.BUY_CALL), "q").denials()] == [
        RiskReason.TRADING_REDUCING]
    trim = engine.on_decision(decision("SPY", n + 1, Action.TRIM_50), "t")
    assert [(o.order.side, o.order.contracts) for o in trim.orders] == [(OrderSide.SELL, 2)]


def test_the_daily_loss_limit_halts_trading() -> None:
    engine = make_engine(RiskConfig(max_daily_loss=50.0, take_profit_tiers=()), contracts=10)
    n = warm_up(engine, bars=30, wiggle=0.3)
    open_call(engine, n=n, price=600.3)
    effects = engine.on_bar(bar("SPY", n, 599.0))
    fill_all(engine, effects)
    assert engine.pnl_today() <= -50.0
    assert engine.state.trading_state is TradingState.HALTED
    assert any(isinstance(e, TradingStateChanged) and e.reason == "max_daily_loss" for e in effects.events)


def test_cooldown_after_a_stop_out_holds_then_expires() -> None:
    engine = make_engine(RiskConfig(cooldown_after_stop_minutes=10, take_profit_tiers=()))
    n = warm_up(engine, bars=30, wiggle=0.3)
    open_call(engine, n=n)
    price = 600.3
    while not (effects := engine.on_bar(bar("SPY", n, price))).orders:  # a steady slide: a stop on the way
        n, price = n + 1, price - 0.3
    assert [o.order.reason for o in effects.orders] == [ExitReason.STOP]
    fill_all(engine, effects)
    stopped_at = n
    for k in range(stopped_at + 1, stopped_at + 12):
        engine.on_bar(bar("SPY", k, price))
        result = engine.on_decision(decision("SPY", k, Action.BUY_CALL), f"again-{k}")
        in_cooldown = (minute(k + 1) - minute(stopped_at + 1)).total_seconds() / 60 < 10
        assert bool(result.denials()) == in_cooldown, k
        if not in_cooldown:
            assert result.orders and result.denials() == []
            return
    raise AssertionError("the cooldown never expired")


def test_symbol_rotation_caps_and_order_sizes() -> None:
    engine = make_engine(RiskConfig(max_concurrent_positions=2), contracts=1)
    for symbol, price in (("SPY", 600.0), ("QQQ", 500.0), ("SPX", 6000.0)):
        warm_up(engine, symbol, price)
    open_call(engine, "SPY")
    assert [d.reason for d in engine.on_decision(decision("SPY", 6, Action.BUY_PUT), "s2").denials()] == [
        RiskReason.SYMBOL_ALREADY_HELD]
    open_call(engine, "QQQ")
    assert [d.reason for d in engine.on_decision(decision("SPX", 5, Action.BUY_CALL), "x").denials()] == [
        RiskReason.MAX_CONCURRENT_POSITIONS]
    big = make_engine(RiskConfig(max_contracts_per_order=3), contracts=4)
    warm_up(big)
    assert [d.reason for d in big.on_decision(decision("SPY", 5, Action.BUY_CALL), "b").denials()] == [
        RiskReason.ORDER_CONTRACTS_LIMIT]


def test_entries_stop_at_the_cutoff_and_positions_flatten_before_the_close() -> None:
    engine = make_engine(RiskConfig(take_profit_tiers=()))
    warm_up(engine)
    for n in range(5, 361):  # up to 15:30 ET
        engine.on_bar(bar("SPY", n, 600.0))
    assert [d.reason for d in engine.on_decision(decision("SPY", 360, Action.BUY_CALL), "late").denials()] == [
        RiskReason.AFTER_ENTRY_CUTOFF]
    early = make_engine(RiskConfig(take_profit_tiers=(), stop_loss_pct=0.99))  # theta would stop it first
    warm_up(early)
    open_call(early)
    reasons = []
    for n in range(6, 390):
        reasons += [o.order.reason for o in early.on_bar(bar("SPY", n, 600.0)).orders]
        if reasons:
            assert n + 1 == 385, n  # the bar closing at 15:55 ET
            break
    assert reasons == [ExitReason.END_OF_DAY]


def test_the_order_rate_limit_denies_the_101st_order_in_a_second() -> None:
    engine = make_engine(RiskConfig(cooldown_after_exit_minutes=0, max_trades_per_day=1000), rate="100/1s")
    clock: FakeMonotonic = engine._monotonic  # type: ignore[assignment]
    start = warm_up(engine)
    sent, denied = 0, []
    for k in range(101):
        clock.now = k * 0.009  # 101 orders within 0.91 s
        action = Action.BUY_CALL if k % 2 == 0 else Action.EXIT
        engine.on_bar(bar("SPY", start + k, 600.0))  # one decision per minute: (model, symbol, minute) is unique
        effects = engine.on_decision(decision("SPY", start + k, action), f"burst-{k}")
        sent += len(effects.orders)
        denied += [d.reason for d in effects.denials()]
        fill_all(engine, effects)
    assert (sent, denied) == (100, [ORDER_RATE_LIMIT])
