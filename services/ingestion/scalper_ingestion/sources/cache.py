"""Download cache: Polygon's raw minute aggregates per symbol-day as Parquet, so a repeated backfill
makes no request. Only complete past days belong here (see :func:`is_complete_day`)."""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from scalper_shared.core.calendar import NEW_YORK

logger = logging.getLogger(__name__)

RAW_COLUMNS: tuple[str, ...] = ("t", "o", "h", "l", "c", "v", "vw", "n")


def empty_raw() -> pd.DataFrame:
    """Raw aggregates with no rows (a trading day the feed had nothing for)."""
    return conform_raw(pd.DataFrame())


def conform_raw(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly :data:`RAW_COLUMNS`: ``t`` as int64 epoch ms, everything else float64 (NaN if absent)."""
    out = pd.DataFrame(index=frame.index)
    out["t"] = pd.to_numeric(frame["t"]).astype("int64") if "t" in frame else pd.Series(dtype="int64")
    for column in RAW_COLUMNS[1:]:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64") if column in frame \
            else float("nan")
    return out.reset_index(drop=True)


def day_end(day: date) -> datetime:
    """The instant after ``day`` ends in New York (its next local midnight), timezone-aware."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK)


def is_complete_day(day: date, now: datetime) -> bool:
    """True once ``day`` is over in New York: only such days are safe to cache (today still changes)."""
    return now >= day_end(day)


class AggsCache:
    """Raw aggregates under ``root/<SYMBOL>/<YYYY-MM-DD>.parquet`` (``I:SPX`` is stored as ``I_SPX``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, symbol: str, day: date) -> Path:
        return self.root / symbol.replace(":", "_") / f"{day.isoformat()}.parquet"

    def load(self, symbol: str, day: date) -> pd.DataFrame | None:
        """The cached raw aggregates of ``symbol`` on ``day``, or None if not cached. A cached day
        without a row counts as not cached: a trading day Polygon had nothing for is asked for again
        (earlier versions cached such days as complete)."""
        path = self.path(symbol, day)
        if not path.exists():
            return None
        raw = conform_raw(pd.read_parquet(path))
        return raw if len(raw) else None

    def store(self, symbol: str, day: date, raw: pd.DataFrame) -> None:
        """Write atomically (temp file + rename): a crash never leaves a half-written day."""
        path = self.path(symbol, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            conform_raw(raw).to_parquet(temp, index=False)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        logger.debug("cached %s rows of %s on %s at %s", len(raw), symbol, day, path)
