"""Database access of the feature service and builder: bars in, feature rows out.

Bars come from the ``bars`` table (regular-hours rows; a NULL volume, as for an index, is 0 for the
features). Feature rows go to the ``features`` table through ``bulk_upsert`` inside the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert

from scalper_shared.core.features import BarArrays, BarInput
from scalper_shared.core.features.availability import is_index
from scalper_shared.db import bars, bulk_upsert
from scalper_shared.db.models import feature_owners, features


def ms_to_datetime(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


def datetime_to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def load_bar_arrays(connection: Connection, symbols: Sequence[str], start_ms: int,
                    end_ms: int) -> dict[str, BarArrays]:
    """Regular-hours bars of ``symbols`` with ``start_ms <= start < end_ms``, per symbol (may be empty)."""
    return load_session_bars(connection, symbols, start_ms, end_ms).bars


class SessionBarData(NamedTuple):
    bars: dict[str, BarArrays]
    without_volume: frozenset[str]
    """Equity symbols with a NULL volume among these bars (imported with ``--no-volume``)."""


def load_session_bars(connection: Connection, symbols: Sequence[str], start_ms: int, end_ms: int,
                      through: Mapping[str, int] | None = None) -> SessionBarData:
    """Like ``load_bar_arrays``; with ``through``, each symbol's bars up to its ``through`` start only
    (a symbol missing from it gets none), and the equity symbols whose volume is missing."""
    query = (select(bars.c.symbol, bars.c.start, bars.c.open, bars.c.high, bars.c.low, bars.c.close,
                    bars.c.volume)
             .where(bars.c.symbol.in_(list(symbols)), bars.c.session == "regular",
                    bars.c.start >= ms_to_datetime(start_ms), bars.c.start < ms_to_datetime(end_ms))
             .order_by(bars.c.symbol, bars.c.start))
    rows: dict[str, list[tuple[int, float, float, float, float, float]]] = {s: [] for s in symbols}
    without_volume = set()
    for symbol, start, o, h, l, c, v in connection.execute(query):  # noqa: E741
        t = datetime_to_ms(start)
        if through is not None and t > through.get(symbol, -1):
            continue
        if v is None and not is_index(symbol):
            without_volume.add(symbol)
        rows[symbol].append((t, o, h, l, c, 0.0 if v is None else v))
    return SessionBarData({symbol: _arrays(values) for symbol, values in rows.items()}, frozenset(without_volume))


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
    """One symbol-minute's features as stored and published."""

    symbol: str
    minute_ms: int
    values: tuple[float, ...]
    real: bool
    unavailable: tuple[str, ...] = ()


def upsert_feature_rows(connection: Connection, rows: Iterable[StoredFeature], spec_hash: str,
                        *, published: bool) -> int:
    """Write rows; returns how many were staged."""
    batch = [(r.symbol, ms_to_datetime(r.minute_ms), spec_hash, list(r.values), r.real, list(r.unavailable),
              published) for r in rows]
    result = bulk_upsert(connection, features, batch,
                         columns=("symbol", "minute", "spec_hash", "values", "real", "unavailable", "published"))
    return result.staged


_COLUMNS = (features.c.symbol, features.c.minute, features.c["values"], features.c.real, features.c.unavailable)


def _stored(rows: Iterable[Any]) -> list[StoredFeature]:
    return [StoredFeature(s, datetime_to_ms(m), tuple(v), r, tuple(u)) for s, m, v, r, u in rows]


def unpublished_features(connection: Connection, symbols: Sequence[str], spec_hash: str) -> list[StoredFeature]:
    """Committed rows not yet confirmed as published, oldest minute first."""
    query = (select(*_COLUMNS)
             .where(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash,
                    features.c.published.is_(False))
             .order_by(features.c.minute, features.c.symbol))
    return _stored(connection.execute(query))


def session_features(connection: Connection, symbols: Sequence[str], spec_hash: str, start_ms: int,
                     end_ms: int) -> list[StoredFeature]:
    """The stored rows of ``symbols`` with ``start_ms <= minute < end_ms``."""
    query = (select(*_COLUMNS)
             .where(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash,
                    features.c.minute >= ms_to_datetime(start_ms), features.c.minute < ms_to_datetime(end_ms)))
    return _stored(connection.execute(query))


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
    query = (select(*_COLUMNS)
             .where(features.c.symbol.in_(list(symbols)), features.c.spec_hash == spec_hash)
             .order_by(features.c.symbol, features.c.minute))
    return _stored(connection.execute(query))


class FenceLost(RuntimeError):
    """A newer owner of the universe took over: this one must stop writing. ``stored``: the fence's token."""

    def __init__(self, message: str, stored: int | None = None) -> None:
        super().__init__(message)
        self.stored = stored


def claim_fence(connection: Connection, universe: str, token: int, owner: str) -> None:
    """Record ``token`` as the universe's newest owner; FenceLost when a newer token is stored."""
    statement = (insert(feature_owners).values(universe=universe, token=token, owner=owner)
                 .on_conflict_do_update(index_elements=[feature_owners.c.universe],
                                        set_={"token": token, "owner": owner, "updated_at": func.now()},
                                        where=feature_owners.c.token <= token)
                 .returning(feature_owners.c.token))
    if connection.execute(statement).scalar_one_or_none() is None:
        stored = connection.execute(select(feature_owners.c.token)
                                    .where(feature_owners.c.universe == universe)).scalar_one_or_none()
        raise FenceLost(f"universe {universe}: the fence holds token {stored}, newer than {token}", stored)


def check_fence(connection: Connection, universe: str, token: int) -> None:
    """Inside a writing transaction: FenceLost unless ``token`` is the stored one (the row stays
    share-locked until the commit, so a takeover waits for this write)."""
    stored = connection.execute(select(feature_owners.c.token).where(feature_owners.c.universe == universe)
                                .with_for_update(read=True)).scalar_one_or_none()
    if stored != token:
        raise FenceLost(f"universe {universe}: fence holds token {stored}, this owner has {token}", stored)


def bar_input(t_ms: int, o: float, h: float, l: float, c: float, v: float | None) -> BarInput:  # noqa: E741
    """A bar for the feature core; a missing volume (index bars) counts as 0."""
    return BarInput(t_ms, o, h, l, c, 0.0 if v is None else v)
