from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from scalper_shared.core import risk
from scalper_shared.core.calendar import NEW_YORK, trading_day
from scalper_shared.core.risk import ExitRecord, RiskReason, RiskSnapshot
from scalper_shared.schema.messages import TradingState

DAY = date(2024, 7, 1)
EARLY_CLOSE_DAY = date(2024, 11, 29)  # 13:00 ET close


def _et(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def _close(day: date = DAY) -> datetime:
    session = trading_day(day)
    assert session is not None
    return session.close


def _snapshot(**changes: object) -> RiskSnapshot:
    base = RiskSnapshot(now=_et(DAY, 11, 0), close=_close())
    return replace(base, **changes)  # type: ignore[arg-type]


# --- stop -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "mark"), [(2.00, 1.70), (1.00, 0.85), (3.00, 2.55), (17.40, 14.79)])
def test_stop_fires_at_exactly_minus_fifteen_percent(entry: float, mark: float) -> None:
    assert risk.stop_triggered(entry, mark)


def test_stop_does_not_fire_at_minus_fourteen_point_nine_nine_percent() -> None:
    assert not risk.stop_triggered(2.00, 2.00 * (1 - 0.1499))
    assert not risk.stop_triggered(1.00, 0.8501)


def test_stop_is_vectorised() -> None:
    fired = risk.stop_triggered([2.0, 2.0, 1.0, 1.0], [1.70, 1.7002, 0.5, 1.2])
    assert fired.tolist() == [True, False, True, False]


def test_stop_fills_at_the_next_bar_bid_so_a_gap_loses_more_than_fifteen_percent() -> None:
    bids = [2.00, 1.95, 1.70, 1.40, 1.50]
    exit_ = risk.first_stop_exit(2.00, bids)
    assert exit_ == risk.StopExit(trigger_index=2, fill_index=3, fill_price=1.40)
    assert risk.premium_return(2.00, exit_.fill_price) == pytest.approx(-0.30)
    assert risk.premium_return(2.00, exit_.fill_price) < -0.15


def test_stop_on_the_last_bar_fills_at_that_bar_and_no_stop_gives_none() -> None:
    assert risk.first_stop_exit(2.00, [2.0, 1.9, 1.6]) == risk.StopExit(2, 2, 1.6)
    assert risk.first_stop_exit(2.00, [2.0, 1.9, 1.8]) is None


def test_stop_fill_price_is_the_next_bid_floored_at_zero() -> None:
    assert risk.stop_fill_price([1.40, -0.01]).tolist() == [1.40, 0.0]


# --- take profit ------------------------------------------------------------------------------

def test_take_profit_tiers_fire_in_order_with_their_trim_fractions() -> None:
    assert risk.take_profit_tier(1.00, 1.19, 0) is None
    assert risk.take_profit_tier(1.00, 1.20, 0) == risk.TakeProfitHit(1, 0.20, 0.5)
    assert risk.take_profit_tier(1.00, 1.49, 1) is None
    assert risk.take_profit_tier(1.00, 1.50, 1) == risk.TakeProfitHit(2, 0.50, 0.7)
    assert risk.take_profit_tier(1.00, 2.00, 2) == risk.TakeProfitHit(3, 1.00, 1.0)
    assert risk.take_profit_tier(1.00, 5.00, 3) is None


def test_a_jump_past_several_tiers_yields_them_one_at_a_time() -> None:
    hits = []
    tiers_hit = 0
    while (hit := risk.take_profit_tier(2.00, 5.00, tiers_hit)) is not None:
        hits.append(hit.tier)
        tiers_hit = hit.tier
    assert hits == [1, 2, 3]


def test_take_profit_tiers_are_vectorised_and_configurable() -> None:
    tiers, fractions = risk.take_profit_tiers([1.0, 1.0, 1.0], [1.2, 1.6, 2.0], [0, 0, 2])
    assert tiers.tolist() == [1, 1, 3] and fractions.tolist() == [0.5, 0.5, 1.0]
    config = risk.RiskConfig(take_profit_tiers=(risk.TakeProfitTier(gain=0.1, trim_fraction=1.0),))
    assert risk.take_profit_tier(1.0, 1.1, 0, config) == risk.TakeProfitHit(1, 0.1, 1.0)
    with pytest.raises(ValidationError, match="ascending"):
        risk.RiskConfig(take_profit_tiers=(risk.TakeProfitTier(gain=0.5, trim_fraction=0.5),
                                           risk.TakeProfitTier(gain=0.2, trim_fraction=0.5)))


@pytest.mark.parametrize(("held", "fraction", "sold"),
                         [(10, 0.5, 5), (3, 0.5, 2), (1, 0.5, 1), (10, 0.7, 7), (3, 0.7, 2), (5, 1.0, 5), (0, 0.5, 0)])
def test_contracts_to_sell_rounds_half_up_and_sells_at_least_one(held: int, fraction: float, sold: int) -> None:
    assert risk.contracts_to_sell(held, fraction) == sold


# --- session windows --------------------------------------------------------------------------

def test_must_flatten_from_five_minutes_before_a_regular_close() -> None:
    assert not risk.must_flatten(_et(DAY, 15, 54), _close())
    assert risk.must_flatten(_et(DAY, 15, 55), _close())
    assert risk.flatten_time(_close()) == _et(DAY, 15, 55)


def test_early_close_moves_the_cutoff_and_flatten_times() -> None:
    close = _close(EARLY_CLOSE_DAY)
    assert close == _et(EARLY_CLOSE_DAY, 13, 0)
    assert risk.entry_cutoff_time(close) == _et(EARLY_CLOSE_DAY, 12, 30)
    assert risk.must_flatten(_et(EARLY_CLOSE_DAY, 12, 55), close)
    assert not risk.must_flatten(_et(EARLY_CLOSE_DAY, 12, 54), close)


def test_config_rejects_a_cutoff_after_the_flatten_time() -> None:
    with pytest.raises(ValidationError, match="entry_cutoff_minutes"):
        risk.RiskConfig(entry_cutoff_minutes=3, flatten_minutes=5)


# --- entry checks -----------------------------------------------------------------------------

def test_entry_is_allowed_in_a_quiet_active_session() -> None:
    assert risk.check_entry(_snapshot(), "SPY", 5) is None


@pytest.mark.parametrize(("state", "reason"), [(TradingState.HALTED, RiskReason.TRADING_HALTED),
                                               (TradingState.REDUCING, RiskReason.TRADING_REDUCING),
                                               ("halted", RiskReason.TRADING_HALTED)])
def test_halted_and_reducing_block_entries_but_allow_exits(state: TradingState, reason: RiskReason) -> None:
    snapshot = _snapshot(trading_state=state, positions={"QQQ": 4})
    assert risk.check_entry(snapshot, "SPY", 1) == reason
    assert risk.check_reduce(snapshot, "QQQ", 2) is None
    assert risk.check_reduce(snapshot, "QQQ", 4) is None


def test_entry_cutoff_at_fifteen_thirty() -> None:
    assert risk.check_entry(_snapshot(now=_et(DAY, 15, 29)), "SPY", 1) is None
    assert risk.check_entry(_snapshot(now=_et(DAY, 15, 30)), "SPY", 1) == RiskReason.AFTER_ENTRY_CUTOFF
    assert risk.check_entry(_snapshot(now=_et(DAY, 15, 56)), "SPY", 1) == RiskReason.FLATTEN_WINDOW


def test_cooldown_after_a_stop_out_is_longer_than_after_an_exit() -> None:
    now = _et(DAY, 11, 0)
    stopped = {"SPY": ExitRecord(at=now - timedelta(minutes=9), was_stop=True)}
    assert risk.check_entry(_snapshot(last_exits=stopped), "SPY", 1) == RiskReason.COOLDOWN
    stopped = {"SPY": ExitRecord(at=now - timedelta(minutes=10), was_stop=True)}
    assert risk.check_entry(_snapshot(last_exits=stopped), "SPY", 1) is None
    exited = {"SPY": ExitRecord(at=now - timedelta(minutes=1), was_stop=False)}
    assert risk.check_entry(_snapshot(last_exits=exited), "SPY", 1) == RiskReason.COOLDOWN
    exited = {"SPY": ExitRecord(at=now - timedelta(minutes=2), was_stop=False)}
    assert risk.check_entry(_snapshot(last_exits=exited), "SPY", 1) is None


def test_cooldown_is_per_symbol() -> None:
    now = _et(DAY, 11, 0)
    stopped = {"QQQ": ExitRecord(at=now - timedelta(minutes=1), was_stop=True)}
    assert risk.check_entry(_snapshot(last_exits=stopped), "SPY", 1) is None
    assert risk.cooldown_until(now, True) == now + timedelta(minutes=10)


def test_trades_per_day_cap() -> None:
    assert risk.check_entry(_snapshot(trades_today=19), "SPY", 1) is None
    assert risk.check_entry(_snapshot(trades_today=20), "SPY", 1) == RiskReason.TRADES_PER_DAY_CAP


def test_max_daily_loss() -> None:
    assert risk.check_entry(_snapshot(pnl_today=-999.99), "SPY", 1) is None
    assert risk.check_entry(_snapshot(pnl_today=-1000.0), "SPY", 1) == RiskReason.MAX_DAILY_LOSS


def test_contracts_per_order_limit() -> None:
    assert risk.check_entry(_snapshot(), "SPY", 10) is None
    assert risk.check_entry(_snapshot(), "SPY", 11) == RiskReason.ORDER_CONTRACTS_LIMIT
    assert risk.check_entry(_snapshot(), "SPY", 0) == RiskReason.BAD_CONTRACTS


def test_portfolio_contracts_limit() -> None:
    positions = {"QQQ": 10, "SPX": 10}
    assert risk.check_entry(_snapshot(positions=positions), "SPY", 10) is None
    positions = {"QQQ": 10, "SPX": 15}
    assert risk.check_entry(_snapshot(positions=positions), "SPY", 10) == RiskReason.PORTFOLIO_CONTRACTS_LIMIT


def test_max_concurrent_positions() -> None:
    positions = {"QQQ": 1, "SPX": 1, "IWM": 1}
    assert risk.check_entry(_snapshot(positions=positions), "SPY", 1) == RiskReason.MAX_CONCURRENT_POSITIONS
    positions = {"QQQ": 1, "SPX": 1, "IWM": 0}
    assert risk.check_entry(_snapshot(positions=positions), "SPY", 1) is None


def test_one_position_per_symbol_across_ticker_spellings() -> None:
    snapshot = _snapshot(positions={"I:SPX": 2})
    assert risk.check_entry(snapshot, "SPX", 1) == RiskReason.SYMBOL_ALREADY_HELD


def test_reduce_needs_a_position_and_no_more_than_held() -> None:
    snapshot = _snapshot(positions={"SPY": 3})
    assert risk.check_reduce(snapshot, "QQQ", 1) == RiskReason.NO_POSITION
    assert risk.check_reduce(snapshot, "SPY", 4) == RiskReason.EXCEEDS_POSITION
    assert risk.check_reduce(snapshot, "SPY", 0) == RiskReason.BAD_CONTRACTS


def test_reasons_are_plain_strings_for_order_denied_events() -> None:
    reason = risk.check_entry(_snapshot(trades_today=99), "SPY", 1)
    assert isinstance(reason, str) and reason == "trades_per_day_cap"


def test_vectorised_predicates_agree_with_the_thresholds() -> None:
    assert risk.past_entry_cutoff([31, 30, 29.5]).tolist() == [False, True, True]
    assert risk.in_cooldown([9.9, 9.9, 1.9, np.inf, np.nan], [True, False, False, True, False]).tolist() == \
        [True, False, True, False, False]
    assert risk.entries_allowed(["active", TradingState.REDUCING, TradingState.HALTED]).tolist() == \
        [True, False, False]
