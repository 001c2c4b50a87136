"""Episode data: one episode per symbol-session, as flat arrays ready for the environment.

Built from 1-minute bars through the shared feature code (``symbol_features`` semantics: regular
hours, gap-filled minute grid, cross-symbol context from the reference and the peer), so training
sees exactly the market features the live policy sees. Nothing here depends on an ``EnvConfig``:
the environment compiles config-dependent arrays (implied vol, time to expiry) from these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from scalper_shared.core.arrays import FloatArray, IntArray
from scalper_shared.core.features import (
    BarArrays,
    peer_symbol,
    reference_symbol,
    session_features,
    split_sessions,
    strong_setup,
)
from scalper_shared.core.features.batch import by_day
from scalper_shared.core.features.sessions import MINUTE_MS

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class EpisodeSet:
    """Symbol-sessions back to back: rows ``offsets[e]:offsets[e+1]`` belong to episode ``e``.

    Per row (one grid minute, decision at the bar's close): ``features`` (the 21 market features,
    float32), the underlying ``close``, ``minutes_to_close`` and ``minute_of_day`` (minutes since the
    09:30 ET open, both measured at the bar's close, so they add up to the session length), and the
    strong ``setup`` (+1 call, -1 put, 0). Per episode: ``symbols`` and ``days``.
    """

    features: npt.NDArray[np.float32]
    close: FloatArray
    minutes_to_close: FloatArray
    minute_of_day: FloatArray
    setup: npt.NDArray[np.int8]
    offsets: IntArray
    symbols: tuple[str, ...]
    days: tuple[date, ...]
    spec_hash: str

    @property
    def n_episodes(self) -> int:
        return len(self.symbols)

    @property
    def lengths(self) -> IntArray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_episodes

    def select(self, episodes: Sequence[int] | IntArray) -> EpisodeSet:
        """The episodes at the given indices, in that order (e.g. a train/validation split)."""
        chosen = np.asarray(episodes, dtype=np.int64)
        rows = np.concatenate([np.arange(self.offsets[e], self.offsets[e + 1]) for e in chosen]) \
            if len(chosen) else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.lengths[chosen])]).astype(np.int64)
        return EpisodeSet(self.features[rows], self.close[rows], self.minutes_to_close[rows],
                          self.minute_of_day[rows], self.setup[rows], offsets,
                          tuple(self.symbols[e] for e in chosen), tuple(self.days[e] for e in chosen),
                          self.spec_hash)

    @classmethod
    def concat(cls, parts: Sequence[EpisodeSet]) -> EpisodeSet:
        if not parts:
            raise ValueError("no episode sets to concatenate")
        offsets, total = [np.zeros(1, np.int64)], 0
        for part in parts:
            offsets.append(part.offsets[1:] + total)
            total += int(part.offsets[-1])
        return cls(np.concatenate([p.features for p in parts]), np.concatenate([p.close for p in parts]),
                   np.concatenate([p.minutes_to_close for p in parts]),
                   np.concatenate([p.minute_of_day for p in parts]), np.concatenate([p.setup for p in parts]),
                   np.concatenate(offsets), tuple(s for p in parts for s in p.symbols),
                   tuple(d for p in parts for d in p.days), parts[0].spec_hash)


def episodes_from_bars(bars: Mapping[str, BarArrays]) -> EpisodeSet:
    """Episodes of every symbol in ``bars`` (any hours; regular sessions are kept).

    Each symbol's context (relative strength, peer return) uses the other symbols of ``bars``,
    exactly as :func:`~scalper_shared.core.features.symbol_features` does.
    """
    reference = reference_symbol(frozenset(bars))
    parts = []
    for symbol in sorted(bars):
        peer = peer_symbol(symbol)
        ref_bars = bars.get(reference) if reference and reference != symbol else None
        parts.append(_symbol_episodes(symbol, bars[symbol], ref_bars, bars.get(peer) if peer else None))
    episodes = EpisodeSet.concat(parts)
    logger.info("built %s episodes (%s rows) for %s", episodes.n_episodes, int(episodes.offsets[-1]),
                sorted(bars))
    return episodes


def _symbol_episodes(symbol: str, bars: BarArrays, reference: BarArrays | None,
                     peer: BarArrays | None) -> EpisodeSet:
    sessions = split_sessions(bars)
    frame = session_features(sessions, by_day(reference), by_day(peer))
    t = np.concatenate([s.bars.t for s in sessions]) if sessions else np.zeros(0, np.int64)
    opens = np.repeat([s.bounds.open_ms for s in sessions], [len(s.bars) for s in sessions])
    closes_ms = np.repeat([s.bounds.close_ms for s in sessions], [len(s.bars) for s in sessions])
    values = frame.values
    return EpisodeSet(
        features=values.astype(np.float32),
        close=np.concatenate([s.bars.c for s in sessions]) if sessions else np.zeros(0),
        minutes_to_close=((closes_ms - t) // MINUTE_MS - 1).astype(np.float64),
        minute_of_day=((t - opens) // MINUTE_MS + 1).astype(np.float64),
        setup=strong_setup(values),
        offsets=frame.offsets.astype(np.int64),
        symbols=tuple(symbol for _ in sessions),
        days=tuple(s.bounds.day for s in sessions),
        spec_hash=frame.spec_hash,
    )


def bars_by_symbol(frame: pd.DataFrame) -> dict[str, BarArrays]:
    """Split a bars frame in the ingestion shape (``symbol, start, open, high, low, close, volume``,
    as the ``bars`` table and every bar source give it) into :class:`BarArrays` per symbol."""
    missing = {"symbol", "start", "open", "high", "low", "close"} - set(frame.columns)
    if missing:
        raise ValueError(f"bars frame lacks columns {sorted(missing)}")
    start = pd.to_datetime(frame["start"], utc=True)
    polygon = pd.DataFrame({
        "symbol": frame["symbol"].astype(str).to_numpy(),
        "t": start.dt.as_unit("ms").astype("int64").to_numpy(),
        "o": frame["open"].to_numpy(np.float64), "h": frame["high"].to_numpy(np.float64),
        "l": frame["low"].to_numpy(np.float64), "c": frame["close"].to_numpy(np.float64),
        "v": frame["volume"].to_numpy(np.float64) if "volume" in frame else 0.0,
    })
    return {str(symbol): BarArrays.from_frame(group) for symbol, group in polygon.groupby("symbol")}


def episodes_from_frame(frame: pd.DataFrame) -> EpisodeSet:
    """Episodes from a bars frame in the ingestion shape (see :func:`bars_by_symbol`)."""
    return episodes_from_bars(bars_by_symbol(frame))


def synthetic_episodes(start: date, end: date, seed: int = 0,
                       symbols: Iterable[str] = ("SPY", "QQQ", "I:SPX"), edge: str = "none") -> EpisodeSet:
    """Episodes of the embedded synthetic market (no data needed): tests, benchmarks, the demo.
    ``edge``: the planted edge (``none`` or ``momentum``, :mod:`scalper_shared.core.edge`)."""
    from scalper_shared.core.synthetic import generate_bars

    frames = list(generate_bars(tuple(symbols), start, end, seed, edge))
    if not frames:
        raise ValueError(f"no trading day between {start} and {end}")
    return episodes_from_frame(pd.concat(frames, ignore_index=True))


def load_episodes(database: str | Engine, symbols: Sequence[str], start: date, end: date) -> EpisodeSet:
    """Episodes from the ``bars`` table for ``symbols`` and New York dates ``start..end`` inclusive.
    ``database`` is an engine (used as is) or a URL (an engine is made and disposed of here)."""
    from sqlalchemy import select

    from scalper_shared.db import bars, make_engine

    first = pd.Timestamp(start, tz="America/New_York").tz_convert("UTC")
    last = (pd.Timestamp(end, tz="America/New_York") + pd.Timedelta(days=1)).tz_convert("UTC")
    query = (select(bars.c.symbol, bars.c.start, bars.c.open, bars.c.high, bars.c.low, bars.c.close,
                    bars.c.volume)
             .where(bars.c.symbol.in_(list(symbols)), bars.c.start >= first.to_pydatetime(),
                    bars.c.start < last.to_pydatetime())
             .order_by(bars.c.symbol, bars.c.start))
    engine = database if isinstance(database, Engine) else make_engine(database)
    try:
        with engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(),
                                 columns=["symbol", "start", "open", "high", "low", "close", "volume"])
    finally:
        if engine is not database:
            engine.dispose()
    if frame.empty:
        raise ValueError(f"no bars for {list(symbols)} between {start} and {end} in the database")
    frame["volume"] = frame["volume"].astype(np.float64).fillna(0.0)
    return episodes_from_frame(frame)


