"""Session, gap, warm-up and no-volume rules, identical in the batch and incremental paths."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from scalper_shared.core.features import FEATURE_SPEC, BarArrays, IncrementalFeatures, symbol_features

OPEN_0801 = int(datetime(2025, 8, 1, 13, 30, tzinfo=UTC).timestamp() * 1000)  # 09:30 ET
OPEN_0804 = int(datetime(2025, 8, 4, 13, 30, tzinfo=UTC).timestamp() * 1000)
EARLY_CLOSE_0703 = int(datetime(2025, 7, 3, 17, 0, tzinfo=UTC).timestamp() * 1000)  # 13:00 ET
MINUTE = 60_000


def _bars(starts: list[int], volume: float | None = 1000.0, seed: int = 1) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = 600 * np.exp(np.cumsum(rng.normal(0, 4e-4, len(starts))))
    open_ = np.concatenate([[close[0] * 0.9995], close[:-1]])
    frame = pd.DataFrame({"t": starts, "o": open_, "h": np.maximum(open_, close) * 1.0003,
                          "l": np.minimum(open_, close) * 0.9997, "c": close})
    if volume is not None:
        frame["v"] = rng.uniform(0.5, 1.5, len(starts)) * volume
    return BarArrays.from_frame(frame)


def _column(values: np.ndarray, name: str) -> np.ndarray:
    return values[:, FEATURE_SPEC.index(name)]


def test_a_missing_minute_becomes_a_flat_zero_volume_bar_in_both_paths() -> None:
    starts = [OPEN_0801 + k * MINUTE for k in range(40) if k not in (10, 11, 25)]
    bars = _bars(starts)
    frame = symbol_features(bars)
    rows = IncrementalFeatures("SPY").replay(bars.bar_inputs())
    assert len(frame.minutes) == 40 and [r.minute for r in rows] == frame.minutes.tolist()
    assert frame.real.tolist() == [k not in (10, 11, 25) for k in range(40)]
    assert [r.real for r in rows] == frame.real.tolist()
    assert _column(frame.values, "ret_1")[10] == 0.0 and _column(frame.values, "body_ratio")[11] == 0.0
    np.testing.assert_array_equal(np.array([r.values for r in rows]), frame.values)


def test_an_index_without_volume_gets_zero_volume_z_and_a_time_weighted_vwap() -> None:
    bars = _bars([OPEN_0801 + k * MINUTE for k in range(30)], volume=None)
    values = symbol_features(bars).values
    assert (_column(values, "volume_z") == 0).all()
    typical = (bars.h + bars.l + bars.c) / 3
    atr_used = np.maximum(np.abs(values[:, FEATURE_SPEC.index("atr_pct")]) * bars.c / 1000, 1e-6 * bars.c)
    expected = (bars.c[-1] - typical.mean()) / atr_used[-1]
    assert abs(_column(values, "dist_vwap")[-1] - expected) < 1e-9 * max(1, abs(expected))


def test_the_clock_respects_the_early_close() -> None:
    starts = [EARLY_CLOSE_0703 - k * MINUTE for k in range(5, 0, -1)]
    bars = _bars(starts)
    values = symbol_features(bars).values
    streamed = np.array([r.values for r in IncrementalFeatures("SPY").replay(bars.bar_inputs())])
    np.testing.assert_array_equal(streamed, values)
    assert _column(values, "minutes_to_close")[-1] == 0.0
    assert _column(values, "theta_pressure")[-1] == 1.0
    assert _column(values, "minutes_since_open")[-1] * 390 == 210


def test_bars_outside_regular_hours_are_ignored() -> None:
    pre = [OPEN_0801 - k * MINUTE for k in range(30, 0, -1)]
    regular = [OPEN_0801 + k * MINUTE for k in range(20)]
    with_pre = symbol_features(_bars(pre + regular)).minutes
    assert with_pre.tolist() == regular
    assert IncrementalFeatures("SPY").update(_bars(pre).bar_inputs()[0]) == []


def test_every_session_starts_from_a_fresh_state() -> None:
    day_two = [OPEN_0804 + k * MINUTE for k in range(40)]
    alone = symbol_features(_bars(day_two, seed=2)).values
    both = _bars([OPEN_0801 + k * MINUTE for k in range(390)] + day_two, seed=3)
    second = BarArrays.concat([both.take(slice(0, 390)), _bars(day_two, seed=2)])
    frame = symbol_features(second)
    assert frame.n_sessions == 2
    np.testing.assert_array_equal(frame.session(1), alone)


def test_values_are_finite_from_the_first_minute_even_for_a_flat_market() -> None:
    frame = pd.DataFrame({"t": [OPEN_0801 + k * MINUTE for k in range(50)], "o": 500.0, "h": 500.0,
                          "l": 500.0, "c": 500.0, "v": 0.0})
    values = symbol_features(BarArrays.from_frame(frame)).values
    assert np.isfinite(values).all()
    assert (_column(values, "dist_ema9") == 0).all() and (_column(values, "rsi_centred") == 0).all()
