"""Batch features for training: bars from the database -> the feature store and the ``features`` table.

Day by day (each session is independent): the regular-hours bars of every symbol are read, the batch
features computed with the reference and peers chosen among the *requested* symbols (exactly as the
service chooses them among its configured symbols, so both give the same numbers), each
symbol-day written as one ``.npz`` (see ``scalper_shared.core.features.store``) and the rows
upserted into ``features`` (marked published: history is not re-announced on the stream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from scalper_features import repository
from scalper_shared.core.calendar import trading_days
from scalper_shared.core.features import (
    FEATURE_SPEC,
    BarArrays,
    FeatureFrame,
    FeatureSpec,
    SessionBars,
    peer_symbol,
    reference_symbol,
    session_features,
)
from scalper_shared.core.features.availability import VOLUME_FEATURES
from scalper_shared.core.features.sessions import MINUTE_MS, SessionBounds, fill_gaps, session_bounds
from scalper_shared.core.features.store import FeatureDay, write_feature_day, write_spec

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BuildReport:
    sessions: int = 0
    symbol_days: int = 0
    rows: int = 0
    files: list[Path] = field(default_factory=list)


def build_features(db: Engine, root: Path, symbols: Sequence[str], start: date, end: date, *,
                   spec: FeatureSpec = FEATURE_SPEC,
                   on_day: Callable[[date], None] | None = None) -> BuildReport:
    """Materialise the features of ``symbols`` for the sessions in ``[start, end]``.

    ``on_day`` is called after each session (progress bars). Idempotent: a rebuild overwrites
    the files and leaves identical table rows untouched.
    """
    write_spec(root, spec)
    report = BuildReport()
    for trading_day in trading_days(start, end):
        bounds = session_bounds(trading_day.day)
        if bounds is None:
            continue
        with db.begin() as connection:
            loaded = repository.load_session_bars(connection, symbols, bounds.open_ms, bounds.close_ms)
            days = session_feature_days(bounds, loaded.bars, symbols, spec, without_volume=loaded.without_volume)
            rows = [row for d in days for row in day_rows(d)]
            repository.upsert_feature_rows(connection, rows, spec.spec_hash, published=True)
        for d in days:
            if d.unavailable:
                logger.warning("features of %s on %s computed without volume: %s marked unavailable",
                               d.symbol, d.day, ", ".join(d.unavailable))
        report.files.extend(write_feature_day(root, d) for d in days)
        report.sessions += 1
        report.symbol_days += len(days)
        report.rows += len(rows)
        logger.debug("features of %s: %s symbol-days, %s rows", trading_day.day, len(days), len(rows))
        if on_day is not None:
            on_day(trading_day.day)
    return report


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
