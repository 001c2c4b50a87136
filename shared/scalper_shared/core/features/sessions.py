"""Bars as arrays, regular-hours session-days, and the gap-filling rule both implementations share.

Rules (see docs/features.md):

- Features are computed on regular-hours bars only, per symbol and session; state resets at every
  session open. Bars outside ``[open, close)`` of the NYSE calendar are ignored.
- A session's feature grid runs from its first real bar to its last one, one row per minute.
  A minute without a bar (no trades) is filled with a flat bar at the previous close, volume 0.
- Times are bar starts in epoch milliseconds UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from scalper_shared.core.arrays import FloatArray, IntArray
from scalper_shared.core.calendar import NEW_YORK, trading_day

MINUTE_MS = 60_000


class BarInput(NamedTuple):
    """One 1-minute bar: start in epoch ms UTC, prices, volume (0 when the symbol has none)."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741
    c: float
    v: float = 0.0


@dataclass(frozen=True, slots=True)
class BarArrays:
    """1-minute bars of one symbol, sorted by start time; ``v`` is 0 where there is no volume."""

    t: IntArray
    o: FloatArray
    h: FloatArray
    l: FloatArray  # noqa: E741
    c: FloatArray
    v: FloatArray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> BarArrays:
        """From a frame with Polygon aggregate columns ``t, o, h, l, c, v`` (``v`` optional)."""
        ordered = frame.sort_values("t").drop_duplicates("t", keep="last")
        volume = ordered["v"] if "v" in ordered else pd.Series(0.0, index=ordered.index)
        return cls(
            t=ordered["t"].to_numpy(np.int64),
            o=ordered["o"].to_numpy(np.float64),
            h=ordered["h"].to_numpy(np.float64),
            l=ordered["l"].to_numpy(np.float64),
            c=ordered["c"].to_numpy(np.float64),
            v=np.nan_to_num(volume.to_numpy(np.float64), nan=0.0),
        )

    @classmethod
    def from_csv(cls, path: str | Path) -> BarArrays:
        """Read a Polygon-aggregates CSV (``t,o,h,l,c,v``; gzip allowed), e.g. ../shared/data files."""
        return cls.from_frame(pd.read_csv(path))

    def __len__(self) -> int:
        return len(self.t)

    def bar_inputs(self) -> list[BarInput]:
        """The bars as :class:`BarInput` tuples for the incremental path."""
        return [BarInput(*row) for row in zip(self.t.tolist(), self.o.tolist(), self.h.tolist(),
                                              self.l.tolist(), self.c.tolist(), self.v.tolist(), strict=True)]

    @classmethod
    def concat(cls, parts: list[BarArrays]) -> BarArrays:
        """Several bar sets of one symbol merged, sorted, duplicates dropped (the last wins)."""
        frame = pd.DataFrame({k: np.concatenate([getattr(p, k) for p in parts]) for k in "tohlcv"})
        return cls.from_frame(frame)

    def take(self, index: npt.NDArray[np.int64] | slice) -> BarArrays:
        return BarArrays(self.t[index], self.o[index], self.h[index], self.l[index], self.c[index],
                         self.v[index])


@dataclass(frozen=True, slots=True)
class SessionBounds:
    """Regular hours of one session in epoch ms: bars start in ``[open_ms, close_ms)``."""

    day: date
    open_ms: int
    close_ms: int

    def minute_index(self, t: int) -> int:
        return (t - self.open_ms) // MINUTE_MS


@lru_cache(maxsize=4096)
def session_bounds(day: date) -> SessionBounds | None:
    """The regular-hours bounds of ``day`` (New York date), or None when the market is closed."""
    session = trading_day(day)
    if session is None:
        return None
    return SessionBounds(day, int(session.open.timestamp() * 1000), int(session.close.timestamp() * 1000))


HOUR_MS = 3_600_000


@lru_cache(maxsize=1024)
def _bounds_of_hour(hour: int) -> SessionBounds | None:
    """Session bounds of the New York date containing UTC hour ``hour`` (offsets are whole hours)."""
    day = datetime.fromtimestamp(hour * HOUR_MS / 1000, tz=UTC).astimezone(NEW_YORK).date()
    return session_bounds(day)


def session_of(t_ms: int) -> SessionBounds | None:
    """The session whose regular hours contain the bar starting at ``t_ms``, or None."""
    bounds = _bounds_of_hour(t_ms // HOUR_MS)
    if bounds is None or not bounds.open_ms <= t_ms < bounds.close_ms:
        return None
    return bounds


@dataclass(frozen=True, slots=True)
class SessionBars:
    """One symbol-session on the filled minute grid; ``real`` marks minutes that had a bar."""

    bounds: SessionBounds
    bars: BarArrays
    real: npt.NDArray[np.bool_]

    @property
    def first_minute(self) -> int:
        return self.bounds.minute_index(int(self.bars.t[0]))


def split_sessions(bars: BarArrays) -> list[SessionBars]:
    """Regular-hours bars grouped by session, each on its gap-filled minute grid."""
    if len(bars) == 0:
        return []
    local_days = pd.DatetimeIndex(pd.to_datetime(bars.t, unit="ms", utc=True)).tz_convert(NEW_YORK).date
    day_codes, day_first = np.unique(local_days, return_index=True)
    out = []
    for day, start, stop in zip(day_codes, day_first, [*day_first[1:], len(bars)], strict=True):
        bounds = session_bounds(day)
        if bounds is None:
            continue
        segment = bars.take(slice(start, stop))
        regular = np.flatnonzero((segment.t >= bounds.open_ms) & (segment.t < bounds.close_ms))
        if len(regular):
            out.append(fill_gaps(bounds, segment.take(regular)))
    return out


def fill_gaps(bounds: SessionBounds, bars: BarArrays) -> SessionBars:
    """Put one session's real bars on a 1-minute grid, filling missing minutes with flat bars."""
    slot = (bars.t - bars.t[0]) // MINUTE_MS
    n = int(slot[-1]) + 1
    real = np.zeros(n, dtype=bool)
    real[slot] = True
    last_real = np.maximum.accumulate(np.where(real, np.arange(n), 0))
    source = np.searchsorted(slot, last_real)
    close = bars.c[source]
    filled = BarArrays(
        t=bars.t[0] + np.arange(n, dtype=np.int64) * MINUTE_MS,
        o=np.where(real, bars.o[source], close),
        h=np.where(real, bars.h[source], close),
        l=np.where(real, bars.l[source], close),
        c=close,
        v=np.where(real, bars.v[source], 0.0),
    )
    return SessionBars(bounds, filled, real)
