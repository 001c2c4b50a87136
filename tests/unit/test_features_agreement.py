"""Batch and streaming features agree bit for bit on the real bar files; neither looks into the future."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from scalper_shared.core.features import FEATURE_SPEC, BarArrays, IncrementalFeatures, symbol_features
from scalper_shared.core.features.agreement import batch_symbols, differences, stream_symbols
from scalper_shared.core.features.numeric import libm_log
from tests.unit.features_support import first_days, load


def _assert_agree(frame, rows) -> None:
    """Equal to the last bit (the same arithmetic in the same order; ``libm_log`` for numpy's SIMD log)."""
    assert [r.minute for r in rows] == frame.minutes.tolist()
    np.testing.assert_array_equal(np.array([r.values for r in rows]), frame.values)
    assert all(d.max_abs == 0 and d.max_rel == 0 for d in differences(frame, rows))


def test_batch_and_streaming_agree_on_the_july_spy_file_including_the_early_close(shared_data: Path) -> None:
    bars = first_days(load(shared_data, "SPY_JUL"), 4)  # 2025-07-01 .. 07-07; 07-03 closes at 13:00
    frame = symbol_features(bars)
    rows = IncrementalFeatures("SPY").replay(bars.bar_inputs())
    assert np.diff(frame.offsets).tolist() == [390, 390, 210, 390]
    _assert_agree(frame, rows)


def test_batch_and_streaming_agree_on_spy_and_qqq_with_cross_symbol_context(shared_data: Path) -> None:
    bars = {"SPY": first_days(load(shared_data, "SPY"), 4), "QQQ": first_days(load(shared_data, "QQQ"), 4)}
    frames = batch_symbols(bars)
    streamed = stream_symbols(bars)
    for symbol in bars:
        _assert_agree(frames[symbol], streamed[symbol])
    qqq = frames["QQQ"].values
    assert np.abs(qqq[:, FEATURE_SPEC.index("relative_strength")]).max() > 0
    assert np.abs(qqq[:, FEATURE_SPEC.index("peer_ret_5")]).max() > 0


def test_the_batch_log_is_math_log_element_by_element() -> None:
    ratios = np.random.default_rng(1).uniform(0.9, 1.1, (200, 500))  # np.log differs on AVX-512 machines
    assert libm_log(ratios).ravel().tolist() == [math.log(x) for x in ratios.ravel().tolist()]
    with np.errstate(divide="ignore"):
        edge = libm_log(np.array([np.nan, 0.0, 1.0]))
    assert np.isnan(edge[0]) and edge[1] == -np.inf and edge[2] == 0.0


@pytest.mark.parametrize("key", ["SPY_JUL", "SPY", "QQQ"])
def test_no_nan_or_inf_and_every_value_inside_its_documented_range(shared_data: Path, key: str) -> None:
    values = symbol_features(load(shared_data, key)).values
    low = np.array([f.low for f in FEATURE_SPEC.market])
    high = np.array([f.high for f in FEATURE_SPEC.market])
    assert len(values) > 5_000
    assert np.isfinite(values).all()
    assert ((values >= low) & (values <= high)).all()


def _perturb_after(bars: BarArrays, cut: int, rng: np.random.Generator) -> BarArrays:
    shock = np.ones(len(bars))
    shock[cut:] = rng.uniform(0.97, 1.03, len(bars) - cut)
    volume = bars.v.copy()
    volume[cut:] = rng.uniform(0, 1e6, len(bars) - cut)
    keep = np.ones(len(bars), dtype=bool)
    keep[cut::7] = False  # also delete some future bars (new gaps)
    widen = np.where(np.arange(len(bars)) >= cut, 0.001, 0.0)
    changed = BarArrays(bars.t, bars.o * shock, bars.h * shock * (1 + widen), bars.l * shock * (1 - widen),
                        bars.c * shock, volume)
    return changed.take(np.flatnonzero(keep))


def test_changing_future_bars_changes_no_past_feature(shared_data: Path) -> None:
    rng = np.random.default_rng(7)
    spy, qqq = first_days(load(shared_data, "SPY"), 2), first_days(load(shared_data, "QQQ"), 2)
    regular = symbol_features(qqq).minutes
    cut_minute = int(regular[len(regular) // 4])  # late morning of the first session
    base = symbol_features(qqq, reference=spy, peer=spy)
    changed = symbol_features(_perturb_after(qqq, int(np.searchsorted(qqq.t, cut_minute)), rng),
                              reference=_perturb_after(spy, int(np.searchsorted(spy.t, cut_minute)), rng),
                              peer=_perturb_after(spy, int(np.searchsorted(spy.t, cut_minute)), rng))
    past = base.minutes < cut_minute
    assert past.sum() > 50
    np.testing.assert_array_equal(changed.values[: past.sum()], base.values[past])
    assert not np.array_equal(changed.values[past.sum():past.sum() + 50], base.values[~past][:50])
