"""Batch versus streaming on the same bars: both results and their per-feature differences.

Used by the agreement test, ``bench/bench_features.py`` and anyone changing a formula.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scalper_shared.core.features.batch import FeatureFrame, symbol_features
from scalper_shared.core.features.engine import FeatureEngine
from scalper_shared.core.features.incremental import FeatureRow
from scalper_shared.core.features.sessions import BarArrays, BarInput
from scalper_shared.core.features.spec import FEATURE_SPEC, FeatureSpec, peer_symbol, reference_symbol


def batch_symbols(bars: Mapping[str, BarArrays], spec: FeatureSpec = FEATURE_SPEC) -> dict[str, FeatureFrame]:
    """Batch features of every symbol, with the reference and peer taken from ``bars``."""
    reference = reference_symbol(frozenset(bars))
    out = {}
    for symbol, own in bars.items():
        peer = peer_symbol(symbol)
        out[symbol] = symbol_features(own, bars[reference] if reference and reference != symbol else None,
                                      bars.get(peer) if peer else None, spec)
    return out


def stream_symbols(bars: Mapping[str, BarArrays], spec: FeatureSpec = FEATURE_SPEC) -> dict[str, list[FeatureRow]]:
    """Streaming features: every bar of every symbol fed minute by minute through a FeatureEngine."""
    by_minute: dict[int, dict[str, BarInput]] = defaultdict(dict)
    for symbol, own in bars.items():
        for bar in own.bar_inputs():
            by_minute[bar.t][symbol] = bar
    engine = FeatureEngine(bars, spec)
    rows: dict[str, list[FeatureRow]] = {s: [] for s in bars}
    for minute in sorted(by_minute):
        for symbol, new in engine.on_minute(by_minute[minute]).items():
            rows[symbol].extend(new)
    return rows


@dataclass(frozen=True, slots=True)
class Difference:
    feature: str
    max_abs: float
    max_rel: float


def differences(frame: FeatureFrame, rows: list[FeatureRow], spec: FeatureSpec = FEATURE_SPEC) -> list[Difference]:
    """Per-feature max absolute and relative (to the larger magnitude) difference; rows must align."""
    minutes = np.array([r.minute for r in rows], dtype=np.int64)
    if len(minutes) != len(frame.minutes) or not np.array_equal(minutes, frame.minutes):
        raise ValueError(f"streaming produced {len(minutes)} rows, batch {len(frame.minutes)}, minutes differ")
    streamed = np.array([r.values for r in rows]).reshape(-1, spec.n_market)
    gap = np.abs(streamed - frame.values)
    scale = np.maximum(np.abs(streamed), np.abs(frame.values))
    rel = np.divide(gap, scale, out=np.zeros_like(gap), where=scale > 0)
    return [Difference(name, float(gap[:, i].max(initial=0.0)), float(rel[:, i].max(initial=0.0)))
            for i, name in enumerate(spec.market_names)]
