"""Attacks on execution through md.bars and policy.decisions (issue #15 items 1-3).

Each test is the attack as observed on 426f8f1, and the property that now holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scalper_execution.engine import (
    ACTION_MASKED,
    BAR_AHEAD_OF_CLOCK,
    DECISION_OUT_OF_TIME,
    NO_PROMOTED_MODEL,
    SPEC_HASH_MISMATCH,
    UNKNOWN_MODEL,
    UNKNOWN_SYMBOL,
    ExecutionConfig,
    ExecutionEngine,
    ServedModel,
)
from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import Action
from scalper_shared.core.lifecycle import ExitReason
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG
from scalper_shared.core.risk import RiskConfig
from scalper_shared.schema.messages import Bar, OrderSide, PolicyDecision, Session
from tests.unit.execution_support import FakeMonotonic, bar, decision, fill_all, make_engine, minute

NO_TAKE_PROFIT = RiskConfig(take_profit_tiers=(), cooldown_after_exit_minutes=0)


def future_bar(symbol: str, close: float) -> Bar:
    start = datetime(2075, 8, 20, 14, 0, tzinfo=UTC)
    return Bar(symbol=symbol, start=start, open=close, high=close, low=close, close=close,
               session=Session.REGULAR, source="attacker")


def open_call(engine: ExecutionEngine, symbol: str, n: int) -> None:
    effects = engine.on_decision(decision(symbol, n, Action.BUY_CALL), f"dec-{symbol}-{n}")
    assert [o.order.side for o in effects.orders] == [OrderSide.BUY], effects.denials()
    fill_all(engine, effects)


def warm(engine: ExecutionEngine, symbol: str, price: float, bars: int = 5) -> int:
    for n in range(bars):
        engine.on_bar(bar(symbol, n, price + (0.5 if n % 2 else -0.5)))
    return bars


# -- item 1: time sanity in execution --------------------------------------------------------------

def test_a_bar_dated_2075_cannot_switch_off_the_stop() -> None:
    engine = make_engine(NO_TAKE_PROFIT)
    n = warm(engine, "SPX", 6000.0)
    open_call(engine, "SPX", n)
    refused = engine.on_bar(future_bar("I:SPX", 6000.0))
    assert refused.refused_bar == BAR_AHEAD_OF_CLOCK and not refused.orders
    price, stops = 6000.0, []
    for k in range(n, n + 40):  # the index falls 1.2% over 40 minutes
        price *= 1 - 0.012 / 40
        stops += [o.order.reason for o in engine.on_bar(bar("I:SPX", k, price)).orders]
        if stops:
            break
    assert stops == [ExitReason.STOP]


def test_a_bar_dated_2075_cannot_move_the_trading_day() -> None:
    engine = make_engine(NO_TAKE_PROFIT)
    n = warm(engine, "SPY", 600.0)
    open_call(engine, "SPY", n)
    day = engine.state.tally.day
    engine.on_bar(future_bar("I:SPX", 6000.0))
    assert engine.state.tally.day == day and engine.state.tally.trades == 1
    assert engine.now() <= minute(n) + timedelta(minutes=1)  # market time did not jump to 2075


def test_a_bar_ahead_of_the_clock_is_refused_and_a_later_real_bar_is_not() -> None:
    clock = FakeClock(minute(10))
    engine = ExecutionEngine(NO_TAKE_PROFIT, DEFAULT_PREMIUM_CONFIG, clock, FakeMonotonic(), ExecutionConfig(),
                             served=lambda _: ServedModel("m", "h"))
    assert engine.on_bar(bar("SPY", 9, 600.0)).refused_bar is None  # closes at the clock
    assert engine.on_bar(bar("SPY", 11, 600.0)).refused_bar == BAR_AHEAD_OF_CLOCK  # closes 2 min ahead
    clock.set(minute(12))
    assert engine.on_bar(bar("SPY", 11, 600.0)).refused_bar is None
    assert engine.market("SPY").last_bar.start == minute(11)


# -- item 2: decision authenticity ----------------------------------------------------------------

def reasons(engine: ExecutionEngine, message: PolicyDecision, envelope_id: str) -> list[str]:
    effects = engine.on_decision(message, envelope_id)
    assert not effects.orders
    return [d.reason for d in effects.denials()]


def test_a_forged_model_id_is_denied() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    assert reasons(engine, decision("SPY", n, Action.BUY_CALL, model_id="forged-model"), "e1") == [UNKNOWN_MODEL]


def test_a_forged_spec_hash_is_denied() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    assert reasons(engine, decision("SPY", n, Action.BUY_CALL, spec_hash="deadbeef"), "e1") == [SPEC_HASH_MISMATCH]


def test_no_decision_is_acted_on_while_no_model_is_promoted() -> None:
    engine = ExecutionEngine(RiskConfig(), DEFAULT_PREMIUM_CONFIG, FakeClock(minute(400)), FakeMonotonic(),
                             ExecutionConfig(), served=lambda _: None)
    n = warm(engine, "SPY", 600.0)
    assert reasons(engine, decision("SPY", n, Action.BUY_CALL), "e1") == [NO_PROMOTED_MODEL]


def test_a_decision_whose_own_mask_forbids_buy_is_denied() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    mask = (True, False, False, False, False, False)
    assert reasons(engine, decision("SPY", n, Action.BUY_CALL, mask=mask), "e1") == [ACTION_MASKED]


def test_a_buy_the_recomputed_mask_forbids_is_denied_even_with_an_all_true_mask() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    open_call(engine, "SPY", n)  # held: execution's own mask forbids a second entry
    engine.on_bar(bar("SPY", n, 600.0))
    assert engine.action_mask("SPY")[Action.BUY_PUT] is False
    assert reasons(engine, decision("SPY", n + 1, Action.BUY_PUT), "e2") == ["symbol_already_held"]


def test_decisions_dated_2019_and_2030_open_nothing() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    for year in (2019, 2030):
        old = decision("SPY", n, Action.BUY_CALL).model_copy(update={"minute": minute(n).replace(year=year)})
        assert reasons(engine, old, f"e-{year}") == [DECISION_OUT_OF_TIME]
    far = decision("SPY", n + 3, Action.BUY_CALL)  # 3 minutes ahead of the newest bar (tolerance 2)
    assert reasons(engine, far, "e-far") == [DECISION_OUT_OF_TIME]


def test_the_same_decision_under_a_new_envelope_id_is_not_executed_twice() -> None:
    engine = make_engine()
    n = warm(engine, "SPY", 600.0)
    first = engine.on_decision(decision("SPY", n, Action.BUY_CALL), "envelope-1")
    again = engine.on_decision(decision("SPY", n, Action.BUY_CALL), "envelope-2")
    assert len(first.orders) == 1 and not again.orders and not again.events


def test_the_same_trim_under_a_new_envelope_id_does_not_sell_twice() -> None:
    engine = make_engine(contracts=10)
    n = warm(engine, "SPY", 600.0)
    fill_all(engine, engine.on_decision(decision("SPY", n - 1, Action.BUY_CALL), "buy"))
    engine.on_bar(bar("SPY", n, 600.0))
    first = engine.on_decision(decision("SPY", n, Action.TRIM_50), "envelope-1")
    fill_all(engine, first)
    again = engine.on_decision(decision("SPY", n, Action.TRIM_50), "envelope-2")
    assert [o.order.contracts for o in first.orders] == [5]
    assert not again.orders  # 426f8f1 sold 3 more: the replayed TRIM_50 trimmed the remaining 5


# -- item 3: unknown symbols ----------------------------------------------------------------------

def test_a_decision_for_a_symbol_without_an_option_spec_is_a_stored_denial_not_an_error() -> None:
    engine = make_engine()
    n = warm(engine, "AAPL", 200.0)
    assert reasons(engine, decision("AAPL", n, Action.BUY_CALL), "e1") == [UNKNOWN_SYMBOL]
    assert reasons(engine, decision("AAPL", n + 1, Action.EXIT), "e2") == [UNKNOWN_SYMBOL]

