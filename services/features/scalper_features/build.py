"""Batch features of one session, as the feature service computes and publishes them.

The regular-hours bars of every symbol of a session go through the shared batch code with the
reference and peers chosen among the service's symbols (as training chooses them among its own), so a
published vector equals the batch build by construction. Training computes the same features from the
``bars`` table itself (``scalper_trainer.env.episodes``); there is no separate feature store (measured:
the features are about 1 s of the 5 s a training job spends loading 59 days, the rest is the database
read, see ``python -m bench training_load``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from scalper_features import repository
from scalper_shared.core.features import (
    FEATURE_SPEC,
    BarArrays,
    FeatureDay,
    FeatureFrame,
    FeatureSpec,
    SessionBars,
    peer_symbol,
    reference_symbol,
    session_features,
)
from scalper_shared.core.features.availability import VOLUME_FEATURES
from scalper_shared.core.features.sessions import MINUTE_MS, SessionBounds, fill_gaps

logger = logging.getLogger(__name__)


def session_feature_days(bounds: SessionBounds, bars: dict[str, BarArrays], symbols: Sequence[str],
                         spec: FeatureSpec = FEATURE_SPEC, *,
                         without_volume: frozenset[str] = frozenset()) -> list[FeatureDay]:
    """Batch features of one session for every symbol with bars, context among ``symbols``.

    Bars outside the session's regular hours are ignored. The days of ``without_volume`` symbols
    carry the volume features as unavailable.
    """
    regular = {s: b.take(np.flatnonzero((b.t >= bounds.open_ms) & (b.t < bounds.close_ms))) for s, b in bars.items()}
    sessions = {s: fill_gaps(bounds, b) for s, b in regular.items() if len(b)}
    context = {s: {bounds.day: session} for s, session in sessions.items()}
    reference = reference_symbol(frozenset(symbols))
    out = []
    for symbol in symbols:
        if symbol not in sessions:
            continue
        peer = peer_symbol(symbol)
        frame = session_features([sessions[symbol]],
                                 context.get(reference) if reference and reference != symbol else None,
                                 context.get(peer) if peer is not None and peer in symbols else None, spec)
        day = feature_day(symbol, sessions[symbol], frame)
        if symbol in without_volume:
            day = replace(day, unavailable=VOLUME_FEATURES)
        out.append(day)
    return out


def day_rows(day: FeatureDay, unavailable: tuple[str, ...] | None = None) -> list[repository.StoredFeature]:
    """The day's rows as stored (``unavailable``: the marks of every row, default the day's own)."""
    marks = day.unavailable if unavailable is None else unavailable
    return [repository.StoredFeature(day.symbol, t, tuple(v), r, marks)
            for t, v, r in zip(day.minutes.tolist(), day.values.tolist(), day.real.tolist(), strict=True)]


def feature_day(symbol: str, session: SessionBars, frame: FeatureFrame) -> FeatureDay:
    """One symbol-session's frame and gap-filled bars as a store record."""
    bars = session.bars
    to_close = (session.bounds.close_ms - bars.t) // MINUTE_MS - 1
    return FeatureDay(symbol=symbol, day=session.bounds.day, spec_hash=frame.spec_hash, minutes=frame.minutes,
                      values=frame.values, close=bars.c, high=bars.h, low=bars.l, real=frame.real,
                      minutes_to_close=to_close.astype(np.int32))
