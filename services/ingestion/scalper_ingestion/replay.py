"""Replay: publish stored days from the ``bars`` table to ``md.bars`` at a speed factor.

Bars go out minute by minute in a deterministic order (start, then symbol), one pipelined publish per
minute. ``speed`` 1 keeps real time (a minute of bars per minute), N is N times faster, 0 is as fast
as possible. Pacing restarts at each day's first bar (no overnight wait). Envelopes carry the same
deterministic ids as at ingestion (one id per bar version) and ``source="replay"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from sqlalchemy import Engine, text

from scalper_ingestion.envelopes import encode_bar_envelopes
from scalper_ingestion.sources.base import BAR_COLUMNS, conform_bars
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.core.calendar import trading_days

logger = logging.getLogger(__name__)

REPLAY_SOURCE = "replay"
MAX_SPEED_WORDS = ("max", "0")


def parse_speed(value: str | float) -> float:
    """``"max"``/0 -> 0 (no waiting), otherwise a positive factor."""
    if isinstance(value, str) and value.strip().lower() in MAX_SPEED_WORDS:
        return 0.0
    speed = float(value)
    if speed < 0 or speed != speed:
        raise ValueError(f"speed must be 'max', 0 or a positive factor, got {value!r}")
    return speed


@dataclass(frozen=True, slots=True)
class ReplayResult:
    days: int
    minutes: int
    published: int


def load_day_bars(engine: Engine, day: date, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Stored bars of the session ``day`` (pre-market to post-market), ordered by start then symbol."""
    sessions = trading_days(day, day)
    if not sessions:
        return conform_bars(pd.DataFrame({column: [] for column in BAR_COLUMNS}))
    session = sessions[0]
    where = "start >= :first AND start < :last" + (" AND symbol = ANY(:symbols)" if symbols else "")
    params: dict[str, object] = {"first": session.pre_open, "last": session.post_close}
    if symbols:
        params["symbols"] = list(symbols)
    query = text(f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE {where} ORDER BY start, symbol")
    with engine.connect() as connection:
        rows = connection.execute(query, params).all()
    return conform_bars(pd.DataFrame(rows, columns=list(BAR_COLUMNS)))


class Pacer:
    """Waits so that minute offset ``m`` (from the day's first bar) goes out at ``m * 60 / speed`` s."""

    def __init__(self, speed: float, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed, self._monotonic, self._sleep = speed, monotonic, sleep
        self._origin: tuple[float, pd.Timestamp] | None = None

    def restart(self) -> None:
        self._origin = None

    def wait_for(self, minute: pd.Timestamp) -> None:
        if self.speed == 0:
            return
        if self._origin is None:
            self._origin = (self._monotonic(), minute)
            return
        started, first = self._origin
        due = started + (minute - first).total_seconds() / self.speed
        delay = due - self._monotonic()
        if delay > 0:
            self._sleep(delay)


def replay_days(engine: Engine, producer: StreamProducer, days: Sequence[date], *, speed: float,
                symbols: Sequence[str] | None = None, clock: Clock | None = None, pacer: Pacer | None = None,
                should_stop: Callable[[], bool] = lambda: False,
                on_minute: Callable[[int], None] | None = None,
                before_minute: Callable[[datetime], None] | None = None) -> ReplayResult:
    """Publish the stored bars of ``days`` in order at ``speed``; stops early when ``should_stop()``.
    ``before_minute`` gets each minute's bar start before its bars go out (a replay clock moves there),
    ``on_minute`` the number of bars after."""
    clock = clock or SystemClock()
    pacer = pacer or Pacer(speed)
    minutes = published = replayed_days = 0
    for day in days:
        bars = load_day_bars(engine, day, symbols)
        if bars.empty:
            logger.warning("replay %s: no stored bars", day)
            continue
        replayed_days += 1
        pacer.restart()
        for minute, group in bars.groupby("start", sort=True):
            if should_stop():
                return ReplayResult(replayed_days, minutes, published)
            pacer.wait_for(minute)
            if before_minute is not None:
                before_minute(minute.to_pydatetime())
            producer.publish_encoded(encode_bar_envelopes(group, source=REPLAY_SOURCE, ts_init=clock.now()))
            minutes += 1
            published += len(group)
            if on_minute is not None:
                on_minute(len(group))
        logger.info("replayed %s: %s bars", day, len(bars))
    return ReplayResult(replayed_days, minutes, published)
