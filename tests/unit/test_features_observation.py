"""The 20 x 23 observation and the strong-setup rule, shared by env, backtest and policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from scalper_shared.core.features import (
    FEATURE_SPEC,
    FLAT,
    IncrementalFeatures,
    ObservationWindow,
    PositionFeatures,
    SetupSide,
    build_observation,
    firing_rates,
    observation_at,
    setup_side,
    strong_setup,
    symbol_features,
)
from scalper_shared.schema.messages import PositionSide, PositionState
from tests.unit.features_support import first_days, load


def _row(**values: float) -> np.ndarray:
    row = np.zeros(FEATURE_SPEC.n_market)
    for name, value in values.items():
        row[FEATURE_SPEC.index(name)] = value
    return row


CALL_ROW = _row(ret_5=0.8, ret_15=1.5, dist_ema9=0.6, dist_ema21=1.2, dist_vwap=3.0, macd_hist=0.2,
                rsi_centred=0.5, opening_range_pos=2.0, volume_z=0.8, minutes_since_open=60 / 390,
                minutes_to_close=200 / 390)


def test_an_observation_is_20_by_23_with_the_current_position_on_every_row() -> None:
    rows = np.arange(30 * 21, dtype=float).reshape(30, 21) / 1000
    observation = build_observation(rows, PositionFeatures(side=1, unrealised_pnl_pct=0.12))
    assert observation.shape == (20, 23) and observation.dtype == np.float32
    np.testing.assert_allclose(observation[:, :21], rows[-20:], rtol=1e-6)
    assert (observation[:, 21] == 1).all()
    np.testing.assert_allclose(observation[:, 22], 0.12, rtol=1e-6)


def test_the_first_minutes_of_a_session_are_zero_padded_on_top() -> None:
    session = np.ones((50, 21))
    observation = observation_at(session, 4, FLAT)
    assert (observation[:15] == 0).all() and (observation[15:, :21] == 1).all()


def test_position_features_come_from_positions_state_and_are_clipped() -> None:
    state = PositionState(symbol="SPY", side=PositionSide.PUT, contracts=2, avg_premium=1.0,
                          mark_premium=9.0, unrealised_pnl_pct=8.0, as_of=datetime(2025, 8, 1, tzinfo=UTC))
    assert PositionFeatures.from_state(state).values() == (-1.0, 5.0)
    assert PositionFeatures.from_state(None) == FLAT
    with pytest.raises(ValueError):
        PositionFeatures(side=2)


def test_the_live_window_gives_the_same_observation_as_the_batch_matrix(shared_data: Path) -> None:
    bars = first_days(load(shared_data, "SPY"), 2)
    frame = symbol_features(bars)
    window = ObservationWindow()
    position = PositionFeatures(side=-1, unrealised_pnl_pct=-0.05)
    checked = 0
    for row in IncrementalFeatures("SPY").replay(bars.bar_inputs()):
        window.push(row)
        i = int(np.searchsorted(frame.minutes, row.minute))
        session = int(np.searchsorted(frame.offsets, i, side="right")) - 1
        if i % 97 == 0 or i - frame.offsets[session] < 3:
            expected = observation_at(frame.session(session), i - int(frame.offsets[session]), position)
            np.testing.assert_array_equal(window.observation(position), expected)
            checked += 1
    assert checked > 10


def test_an_aligned_up_move_is_a_call_setup_and_its_mirror_a_put_setup() -> None:
    put_row = -CALL_ROW
    put_row[FEATURE_SPEC.index("minutes_since_open")] *= -1
    put_row[FEATURE_SPEC.index("minutes_to_close")] *= -1
    put_row[FEATURE_SPEC.index("volume_z")] *= -1
    assert setup_side(CALL_ROW) is SetupSide.CALL
    assert setup_side(put_row) is SetupSide.PUT
    assert strong_setup(np.stack([CALL_ROW, put_row, np.zeros(21)])).tolist() == [1, -1, 0]


def test_no_setup_fires_where_the_volume_features_are_unavailable() -> None:
    no_volume = CALL_ROW.copy()
    no_volume[FEATURE_SPEC.index("volume_z")] = 0.0  # what a day imported with --no-volume computes
    assert setup_side(no_volume) is SetupSide.CALL  # volume_z = 0 alone would pass the condition
    assert setup_side(no_volume, volume_available=False) is SetupSide.NONE
    rows = np.stack([no_volume, no_volume])
    assert strong_setup(rows, volume_available=np.array([True, False])).tolist() == [1, 0]


def test_no_setup_in_the_opening_range_or_when_rsi_is_exhausted() -> None:
    early, exhausted = CALL_ROW.copy(), CALL_ROW.copy()
    early[FEATURE_SPEC.index("minutes_since_open")] = 5 / 390
    exhausted[FEATURE_SPEC.index("rsi_centred")] = 0.95
    assert setup_side(early) is SetupSide.NONE and setup_side(exhausted) is SetupSide.NONE


def test_the_strong_setup_fires_on_a_few_percent_of_real_minutes_on_both_sides(shared_data: Path) -> None:
    calls, puts = firing_rates(symbol_features(load(shared_data, "SPY")).values)
    assert 0.005 < calls < 0.08 and 0.005 < puts < 0.08
