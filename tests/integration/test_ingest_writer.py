"""validate -> upsert -> commit -> publish against real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import redis
from sqlalchemy import Engine, text

from scalper_ingestion.sources.base import conform_bars
from scalper_ingestion.writer import QUARANTINED, BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import FakeClock
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, Envelope, streams

pytestmark = pytest.mark.integration

OPEN = pd.Timestamp("2025-07-01 13:30", tz="UTC")  # 09:30 ET


def bars(*rows: tuple[str, int, float], session: str = "regular") -> pd.DataFrame:
    """(symbol, minute offset from the open, close) rows as a valid batch."""
    return conform_bars(pd.DataFrame({
        "symbol": [r[0] for r in rows], "start": [OPEN + pd.Timedelta(minutes=r[1]) for r in rows],
        "open": [r[2] for r in rows], "high": [r[2] + 1 for r in rows], "low": [r[2] - 1 for r in rows],
        "close": [r[2] for r in rows], "volume": [100.0] * len(rows), "vwap": [r[2] for r in rows],
        "trade_count": [5] * len(rows), "session": [session] * len(rows), "source": ["test"] * len(rows)}))


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def producer(redis_client: redis.Redis, stream_prefix: str) -> StreamProducer:
    return StreamProducer(redis_client, streams.MD_BARS, maxlen=10_000, prefix=stream_prefix)


def published(client: redis.Redis, producer: StreamProducer) -> list[Envelope]:
    return [CODEC.decode(fields[b"envelope"]) for _, fields in client.xrange(producer.key)]


def stored_closes(engine: Engine) -> dict[tuple[str, datetime], float]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT symbol, start, close FROM bars")).all()
    return {(symbol, start): close for symbol, start, close in rows}


def test_only_inserted_and_corrected_bars_are_published_with_new_ids(
        engine: Engine, producer: StreamProducer, redis_client: redis.Redis) -> None:
    writer = BarWriter(engine, producer, clock=FakeClock(datetime(2025, 7, 1, 14, tzinfo=UTC)))
    first = writer.write(bars(("SPY", 1, 600.0), ("SPY", 0, 600.5), ("QQQ", 0, 500.0)))
    assert (first.inserted, first.published) == (3, 3)
    original = published(redis_client, producer)
    assert [(e.payload.symbol, e.payload.start.minute) for e in original] == [("QQQ", 30), ("SPY", 30), ("SPY", 31)]

    second = writer.write(bars(("SPY", 1, 601.0), ("SPY", 0, 600.5), ("QQQ", 0, 500.0), ("SPY", 2, 602.0)))
    assert (second.inserted, second.updated, second.unchanged, second.published) == (1, 1, 2, 2)
    new = published(redis_client, producer)[3:]
    assert [(e.payload.start.minute, e.payload.close) for e in new] == [(31, 601.0), (32, 602.0)]
    assert new[0].id != original[2].id and new[0].id.startswith("bar:SPY:")
    assert stored_closes(engine)[("SPY", (OPEN + pd.Timedelta(minutes=1)).to_pydatetime())] == 601.0

    third = writer.write(bars(("SPY", 1, 601.0)))
    assert (third.unchanged, third.published) == (1, 0)
    assert redis_client.xlen(producer.key) == 5


class CommitCheckingProducer(StreamProducer):
    """Records, at each publish, how many bars another connection already sees (committed ones)."""

    def __init__(self, *args: object, observer: Engine, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.observer = observer
        self.visible_at_publish: list[int] = []

    def publish_encoded(self, encoded: list[bytes]) -> list[str]:
        with self.observer.connect() as connection:
            self.visible_at_publish.append(connection.execute(text("SELECT count(*) FROM bars")).scalar_one())
        return super().publish_encoded(encoded)


def test_bars_are_published_only_after_the_commit(migrated_database_url: str, engine: Engine,
                                                  redis_client: redis.Redis, stream_prefix: str) -> None:
    observer = make_engine(migrated_database_url)
    try:
        producer = CommitCheckingProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix,
                                          observer=observer)
        BarWriter(engine, producer).write(bars(("SPY", 0, 600.0), ("SPY", 1, 600.0)))
        BarWriter(engine, producer).write(bars(("SPY", 2, 600.0)))
    finally:
        observer.dispose()
    assert producer.visible_at_publish == [2, 3]


def test_invalid_bars_are_quarantined_with_a_reason_counted_and_never_raise(
        engine: Engine, producer: StreamProducer, redis_client: redis.Redis) -> None:
    batch = bars(("SPY", 0, 600.0), ("SPY", 1, 600.0), ("SPY", 2, 600.0), ("SPY", 3, 600.0))
    batch.loc[1, "high"] = 590.0                       # high below low
    batch.loc[2, "open"] = np.nan                      # no price
    batch.loc[3, "start"] = pd.Timestamp("2025-07-04 14:00", tz="UTC")  # holiday
    batch.loc[3, "session"] = None
    before = {reason: QUARANTINED.labels(reason)._value.get()
              for reason in ("high_below_low", "non_finite_price", "off_calendar")}

    writer = BarWriter(engine, producer)
    result = writer.write(batch)
    again = writer.write(batch)

    assert (result.inserted, result.quarantined, result.published) == (1, 3, 1)
    assert result.reasons == {"high_below_low": 1, "non_finite_price": 1, "off_calendar": 1}
    assert (again.unchanged, again.quarantined, again.published) == (1, 3, 0)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reason, open, start FROM bars_quarantine ORDER BY reason")).all()
    assert [r.reason for r in rows] == ["high_below_low", "non_finite_price", "off_calendar"]
    assert rows[1].open is None  # NaN stored as NULL; the re-import added no second copy
    assert {reason: QUARANTINED.labels(reason)._value.get() - count for reason, count in before.items()} == \
        {"high_below_low": 2, "non_finite_price": 2, "off_calendar": 2}
    assert redis_client.xlen(producer.key) == 1


def test_extended_hours_bars_are_stored_with_their_calendar_session(engine: Engine) -> None:
    from scalper_ingestion.sources.base import from_polygon_aggs

    starts = pd.to_datetime(["2025-07-03 12:00", "2025-07-03 16:59", "2025-07-03 17:00", "2025-07-03 20:59",
                             "2025-07-03 21:00"], utc=True)  # 08:00, 12:59, 13:00, 16:59, 17:00 ET (early close)
    raw = pd.DataFrame({"t": starts.as_unit("ms").asi8, "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "v": 10.0})
    result = BarWriter(engine, None).write(from_polygon_aggs(raw, "SPY", "test"))
    assert (result.inserted, result.quarantined, result.reasons) == (4, 1, {"off_calendar": 1})
    with engine.connect() as connection:
        sessions = connection.execute(text("SELECT session FROM bars ORDER BY start")).scalars().all()
    assert sessions == ["pre", "regular", "post", "post"]


class ListSource:
    """A bar source over given batches."""

    def __init__(self, *batches: pd.DataFrame) -> None:
        self._batches = batches

    def batches(self) -> Iterator[pd.DataFrame]:
        yield from self._batches


def test_backfill_publishes_every_committed_slice_in_order_while_writing_the_next(
        migrated_database_url: str, engine: Engine, redis_client: redis.Redis, stream_prefix: str) -> None:
    from scalper_ingestion.backfill import run_backfill

    observer = make_engine(migrated_database_url)
    try:
        producer = CommitCheckingProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix,
                                          observer=observer)
        batch = bars(*(("SPY", minute, 600.0 + minute) for minute in range(10)))
        batch.loc[4, "high"] = 500.0  # quarantined: the counts still add up
        slices: list[int] = []
        total = run_backfill(ListSource(batch, bars(("QQQ", 0, 500.0))), BarWriter(engine, producer),
                             on_batch=lambda result: slices.append(result.received), slice_rows=3)
    finally:
        observer.dispose()
    assert slices == [4, 3, 3, 1]  # 9 clean bars in slices of 3 (the quarantined one with the first), then QQQ
    assert (total.received, total.inserted, total.quarantined, total.published) == (11, 10, 1, 10)
    assert producer.visible_at_publish[0] >= 3  # each slice was committed before it was published
    starts = [(e.payload.symbol, e.payload.start) for e in published(redis_client, producer)]
    assert starts[:9] == sorted(starts[:9]) and starts[9][0] == "QQQ" and len(set(starts)) == 10


class FailingProducer(StreamProducer):
    def publish_encoded(self, encoded: list[bytes]) -> list[str]:
        raise redis.ConnectionError("redis went away")


def test_a_failed_publication_stops_the_backfill_with_its_error_after_the_commit(
        engine: Engine, redis_client: redis.Redis, stream_prefix: str) -> None:
    from scalper_ingestion.backfill import ImportFailed, run_backfill

    producer = FailingProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix)
    batch = bars(*(("SPY", minute, 600.0) for minute in range(9)))
    with pytest.raises(ImportFailed, match="redis went away") as failed:
        run_backfill(ListSource(batch), BarWriter(engine, producer), slice_rows=3)
    assert isinstance(failed.value.cause, redis.ConnectionError)
    assert 3 <= len(stored_closes(engine)) <= 6  # the first slice (and at most the one in flight) committed
    assert failed.value.committed.stored == len(stored_closes(engine)) and failed.value.published == 0
    assert failed.value.pending == failed.value.committed.stored  # every committed bar waits in the outbox
