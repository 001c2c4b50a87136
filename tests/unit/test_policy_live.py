"""The live state behind {symbol} requests and live decisions: windows, positions and mask inputs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from scalper_policy.live import LiveState, minute_ms, minutes_to_close_at
from scalper_shared.core.actions import Action
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.schema.messages import FeatureVector, PositionSide, PositionState

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 ET


def vector(minute: datetime, value: float = 0.1, spec_hash: str = FEATURE_SPEC.spec_hash,
           unavailable: tuple[str, ...] = ()) -> FeatureVector:
    return FeatureVector(symbol="SPY", minute=minute, spec_hash=spec_hash, values=(value,) * FEATURE_SPEC.n_market,
                         unavailable=unavailable)


def position(side: PositionSide, at: datetime, pnl_pct: float = 0.0, realised: float = 0.0) -> PositionState:
    return PositionState(symbol="SPY", side=side, contracts=0 if side is PositionSide.FLAT else 2,
                         unrealised_pnl_pct=pnl_pct, realised_pnl=realised, as_of=at)


def test_minutes_to_close_count_as_in_training() -> None:
    assert minutes_to_close_at(minute_ms(OPEN)) == 389.0
    assert minutes_to_close_at(minute_ms(OPEN + timedelta(minutes=389))) == 0.0
    assert minutes_to_close_at(minute_ms(OPEN - timedelta(minutes=1))) == 0.0  # pre-market: no entries
    assert minutes_to_close_at(minute_ms(datetime(1, 1, 1, tzinfo=UTC))) == 0.0  # found by schemathesis: a 500


def test_the_window_keeps_the_last_rows_and_ignores_redeliveries_and_other_specs() -> None:
    live = LiveState()
    for i in range(25):
        assert live.push_features(vector(OPEN + timedelta(minutes=i), value=i / 100))
    assert not live.push_features(vector(OPEN + timedelta(minutes=24), value=0.24))
    assert not live.push_features(vector(OPEN + timedelta(minutes=30), spec_hash="other"))
    assert not live.push_features(vector(OPEN + timedelta(minutes=2), value=9.0))  # left the window
    snapshot = live.snapshot("SPY")
    assert snapshot is not None and snapshot.minute == minute_ms(OPEN + timedelta(minutes=24))
    np.testing.assert_allclose(snapshot.observation[:, 0], np.arange(5, 25) / 100, rtol=1e-6)
    assert snapshot.unavailable == frozenset()


def test_a_row_without_its_peers_marks_the_window_until_a_superseding_vector_replaces_it() -> None:
    live = LiveState()
    for i in range(25):
        marks = ("relative_strength", "peer_ret_5") if i == 20 else ()
        assert live.push_features(vector(OPEN + timedelta(minutes=i), value=i / 100, unavailable=marks))
    snapshot = live.snapshot("SPY")
    assert snapshot is not None and snapshot.unavailable == {"relative_strength", "peer_ret_5"}

    assert live.push_features(vector(OPEN + timedelta(minutes=20), value=0.5))  # the same minute, full context
    snapshot = live.snapshot("SPY")
    assert snapshot is not None and snapshot.unavailable == frozenset()
    assert snapshot.minute == minute_ms(OPEN + timedelta(minutes=24))
    assert snapshot.observation[15, 0] == np.float32(0.5) and snapshot.observation[14, 0] == np.float32(0.19)


def test_a_window_without_volume_stays_marked() -> None:
    live = LiveState()
    live.push_features(vector(OPEN, unavailable=("dist_vwap", "volume_z")))
    live.push_features(vector(OPEN + timedelta(minutes=1)))
    snapshot = live.snapshot("SPY")
    assert snapshot is not None and snapshot.unavailable == {"dist_vwap", "volume_z"}


def test_buy_is_masked_while_a_position_is_open_and_reducing_actions_are_allowed() -> None:
    live = LiveState()
    live.push_features(vector(OPEN + timedelta(minutes=10)))
    live.update_position(position(PositionSide.CALL, OPEN + timedelta(minutes=5), pnl_pct=0.1))
    snapshot = live.snapshot("SPY")
    assert snapshot is not None
    mask = snapshot.inputs.mask()
    assert not mask[Action.BUY_CALL] and not mask[Action.BUY_PUT] and mask[Action.EXIT] and mask[Action.HOLD]
    assert snapshot.observation[-1, FEATURE_SPEC.n_market] == 1.0  # the call position is in the observation


def test_trades_today_count_entries_and_a_new_day_resets_them() -> None:
    live = LiveState()
    for i in range(3):
        live.update_position(position(PositionSide.PUT, OPEN + timedelta(minutes=10 * i)))
        live.update_position(position(PositionSide.PUT, OPEN + timedelta(minutes=10 * i + 1)))  # still open
        live.update_position(position(PositionSide.FLAT, OPEN + timedelta(minutes=10 * i + 2), realised=-50.0))
    inputs = live.mask_inputs("SPY", minute_ms(OPEN + timedelta(minutes=60)))
    assert inputs.trades_today == 3 and inputs.pnl_today == -150.0
    assert live.mask_inputs("SPY", minute_ms(OPEN + timedelta(days=1))).trades_today == 0


def test_a_stop_out_starts_the_long_cooldown() -> None:
    live = LiveState()
    live.update_position(position(PositionSide.CALL, OPEN))
    live.update_position(position(PositionSide.CALL, OPEN + timedelta(minutes=3), pnl_pct=-0.16))
    exit_at = OPEN + timedelta(minutes=4)
    live.update_position(position(PositionSide.FLAT, exit_at))
    soon = live.mask_inputs("SPY", minute_ms(exit_at + timedelta(minutes=4)))
    assert soon.exit_was_stop and soon.minutes_since_exit == 5.0
    assert not soon.mask()[Action.BUY_CALL]  # 5 minutes after a stop: still cooling down (10)
    later = live.mask_inputs("SPY", minute_ms(exit_at + timedelta(minutes=10)))
    assert later.mask()[Action.BUY_CALL]


def test_an_older_position_state_does_not_overwrite_a_newer_one() -> None:
    live = LiveState()
    live.update_position(position(PositionSide.CALL, OPEN + timedelta(minutes=5)))
    assert not live.update_position(position(PositionSide.FLAT, OPEN))
    assert live.mask_inputs("SPY", minute_ms(OPEN + timedelta(minutes=6))).position is PositionSide.CALL
    assert math.isinf(live.mask_inputs("SPY", minute_ms(OPEN + timedelta(minutes=6))).minutes_since_exit)



def test_the_warm_up_counts_from_the_sessions_first_bar_as_the_environments_grid_does() -> None:
    from scalper_policy.decisions import before_warmup

    warmup = FEATURE_SPEC.warmup
    first = minute_ms(OPEN + timedelta(minutes=14))  # the day's first 14 minutes have no bar (2025-08-21)
    last_warmup, first_decision = first + (warmup - 1) * 60_000, first + warmup * 60_000
    assert before_warmup(last_warmup, warmup, first)
    assert not before_warmup(first_decision, warmup, first)
    assert not before_warmup(last_warmup, warmup)  # counted from the open, it would decide 14 minutes early
    assert before_warmup(minute_ms(OPEN), warmup, first + 86_400_000)  # another session's start: the open
