"""Database access of the feature service and builder: bars in, feature rows out.

Bars come from the ``bars`` table (regular-hours rows; a NULL volume, as for an index, is 0 for the
features). Feature rows go to the ``features`` table through ``bulk_upsert`` inside the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from sqlalchemy import Connection, and_, func, select, update

from scalper_shared.core.features import BarArrays, BarInput, FeatureRow
from scalper_shared.db import bars, bulk_upsert
from scalper_shared.db.models import features


def ms_to_datetime(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


def datetime_to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def load_bar_arrays(connection: Connection, symbols: Sequence[str], start_ms: int,
                    end_ms: int) -> dict[str, BarArrays]:
    """Regular-hours bars of ``symbols`` with ``start_ms <= start < end_ms``, per symbol (may be empty)."""
    query = (select(bars.c.symbol, bars.c.start, bars.c.open, bars.c.high, bars.c.low, bars.c.close,
                    func.coalesce(bars.c.volume, 0.0))
             .where(bars.c.symbol.in_(list(symbols)), bars.c.session == "regular",
                    bars.c.start >= ms_to_datetime(start_ms), bars.c.start < ms_to_datetime(end_ms))
             .order_by(bars.c.symbol, bars.c.start))
    rows: dict[str, list[tuple[int, float, float, float, float, float]]] = {s: [] for s in symbols}
    for symbol, start, o, h, l, c, v in connection.execute(query):  # noqa: E741
        rows[symbol].append((datetime_to_ms(start), o, h, l, c, v))
    return {symbol: _arrays(values) for symbol, values in rows.items()}


def _arrays(rows: list[tuple[int, float, float, float, float, float]]) -> BarArrays:
    if not rows:
        empty = np.zeros(0)
        return BarArrays(np.zeros(0, np.int64), empty, empty, empty, empty, empty)
    t, o, h, l, c, v = zip(*rows, strict=True)  # noqa: E741
    return BarArrays(np.array(t, np.int64), *(np.array(x, np.float64) for x in (o, h, l, c, v)))


def latest_regular_bar_ms(connection: Connection, symbols: Sequence[str]) -> int | None:
    """Start of the newest regular-hours bar of any of ``symbols``, or None."""
    latest = connection.execute(select(func.max(bars.c.start)).where(
        bars.c.symbol.in_(list(symbols)), bars.c.session == "regular")).scalar_one()
    return None if latest is None else datetime_to_ms(latest)


def last_feature_minute_ms(connection: Connection, symbols: Sequence[str], spec_hash: str) -> int | None:
    """The newest minute with a stored feature row of any of ``symbols`` under ``spec_hash``."""
    latest = connection.execute(select(func.max(features.c.minute)).where(
        features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash)).scalar_one()
    return None if latest is None else datetime_to_ms(latest)


class StoredFeature(NamedTuple):
    symbol: str
    minute_ms: int
    values: tuple[float, ...]
    real: bool


def upsert_feature_rows(connection: Connection, rows: Iterable[tuple[str, FeatureRow]], spec_hash: str,
                        *, published: bool) -> int:
    """Write ``(symbol, row)`` pairs; returns how many were staged."""
    batch = [(symbol, ms_to_datetime(row.minute), spec_hash, list(row.values), row.real, published)
             for symbol, row in rows]
    result = bulk_upsert(connection, features, batch,
                         columns=("symbol", "minute", "spec_hash", "values", "real", "published"))
    return result.staged


def unpublished_features(connection: Connection, symbols: Sequence[str], spec_hash: str) -> list[StoredFeature]:
    """Committed rows not yet confirmed as published, oldest minute first."""
    query = (select(features.c.symbol, features.c.minute, features.c["values"], features.c.real)
             .where(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash,
                    features.c.published.is_(False))
             .order_by(features.c.minute, features.c.symbol))
    return [StoredFeature(s, datetime_to_ms(m), tuple(v), r) for s, m, v, r in connection.execute(query)]


def mark_published(connection: Connection, symbols: Sequence[str], spec_hash: str, first_ms: int,
                   last_ms: int) -> int:
    """Flag the rows of ``symbols`` in ``[first_ms, last_ms]`` as published; returns the count."""
    statement = (update(features)
                 .where(and_(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash,
                             features.c.minute >= ms_to_datetime(first_ms),
                             features.c.minute <= ms_to_datetime(last_ms), features.c.published.is_(False)))
                 .values(published=True))
    return connection.execute(statement).rowcount


def stored_features(connection: Connection, symbols: Sequence[str], spec_hash: str) -> list[StoredFeature]:
    """Every stored row of ``symbols`` under ``spec_hash`` ordered by symbol then minute (tests, tools)."""
    query = (select(features.c.symbol, features.c.minute, features.c["values"], features.c.real)
             .where(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash)
             .order_by(features.c.symbol, features.c.minute))
    return [StoredFeature(s, datetime_to_ms(m), tuple(v), r) for s, m, v, r in connection.execute(query)]


def bar_input(t_ms: int, o: float, h: float, l: float, c: float, v: float | None) -> BarInput:  # noqa: E741
    """A bar for the feature core; a missing volume (index bars) counts as 0."""
    return BarInput(t_ms, o, h, l, c, 0.0 if v is None else v)
