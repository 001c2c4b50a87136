"""Helpers of the feature-service tests: a real day of SPY+QQQ bars, stored and published as ingestion does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from sqlalchemy import Engine

from scalper_features.repository import ms_to_datetime
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import SequentialIds, SystemClock
from scalper_shared.core.calendar import NEW_YORK, classify
from scalper_shared.core.features import BarArrays
from scalper_shared.db import bars as bars_table
from scalper_shared.db import bulk_upsert
from scalper_shared.schema import make_envelope, streams
from scalper_shared.schema.messages import Bar, Session

DAY = date(2025, 8, 12)
FILES = {"SPY": "SPY_1m_2025-08_2025-10.csv.gz", "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz"}
# The files' regular sessions of that day start at minute 25 (09:55): 365 bars per symbol. Minutes
# (from the open) removed to exercise gap filling and the alignment: QQQ starts 3 minutes late and
# skips three minutes, SPY skips one.
DROPPED = {"QQQ": (25, 26, 27, 65, 66, 225), "SPY": (102,)}
EXPECTED_ROWS = {"SPY": (365, 1), "QQQ": (362, 3)}  # (grid minutes, gap-filled minutes)


def day_bars(shared_data: Path, day: date = DAY) -> dict[str, BarArrays]:
    """All bars (every session) of ``day`` per symbol, with the minutes of ``DROPPED`` removed."""
    out = {}
    for symbol, name in FILES.items():
        bars = BarArrays.from_csv(shared_data / name)
        local = pd.to_datetime(bars.t, unit="ms", utc=True).tz_convert(NEW_YORK)
        opening = pd.Timestamp(day, tz=NEW_YORK) + pd.Timedelta(hours=9, minutes=30)
        minute = ((local - opening) / pd.Timedelta(minutes=1)).to_numpy()
        keep = (local.date == day) & ~np.isin(minute, DROPPED[symbol])
        out[symbol] = bars.take(np.flatnonzero(keep))
    return out


def bar_messages(bars: dict[str, BarArrays]) -> list[Bar]:
    """Bar messages in arrival order: minute by minute, every symbol of a minute together."""
    messages = []
    for symbol, arrays in bars.items():
        for t, o, h, l, c, v in zip(arrays.t.tolist(), arrays.o.tolist(), arrays.h.tolist(),  # noqa: E741
                                    arrays.l.tolist(), arrays.c.tolist(), arrays.v.tolist(), strict=True):
            start = ms_to_datetime(t)
            session = classify(start)
            if session is not None:
                messages.append(Bar(symbol=symbol, start=start, open=o, high=h, low=l, close=c, volume=v,
                                    session=Session(session), source="test"))
    return sorted(messages, key=lambda m: (m.start, m.symbol))


def ingest(db: Engine, client: redis.Redis, prefix: str, messages: Iterable[Bar]) -> None:
    """As ingestion does: write the bars (one transaction), then publish them on md.bars."""
    messages = list(messages)
    if not messages:
        return
    rows = [{"symbol": m.symbol, "start": m.start, "open": m.open, "high": m.high, "low": m.low, "close": m.close,
             "volume": m.volume, "session": str(m.session), "source": m.source} for m in messages]
    with db.begin() as connection:
        bulk_upsert(connection, bars_table, rows)
    producer = StreamProducer(client, streams.MD_BARS, maxlen=100_000, prefix=prefix)
    ids, clock = SequentialIds("bar"), SystemClock()
    producer.publish_many([make_envelope(m, source="test", clock=clock, ids=ids) for m in messages])
