"""Backfill from the synthetic market, then replay stored days to md.bars in order at a speed factor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
import redis
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_ingestion.replay import replay_days
from scalper_ingestion.sources.base import conform_bars
from scalper_ingestion.writer import BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, streams

pytestmark = pytest.mark.integration

DAY = date(2025, 7, 3)
OPEN = pd.Timestamp("2025-07-03 13:30", tz="UTC")


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def _minutes(count: int) -> pd.DataFrame:
    rows = [(symbol, minute) for minute in range(count) for symbol in ("SPY", "I:SPX", "QQQ")]
    return conform_bars(pd.DataFrame({
        "symbol": [s for s, _ in rows], "start": [OPEN + pd.Timedelta(minutes=m) for _, m in rows],
        "open": 100.0, "high": 101.0, "low": 99.0, "close": [100.0 + m / 10 for _, m in rows],
        "session": "regular", "source": "test"}))


def test_replay_publishes_a_stored_day_in_order_at_the_speed_factor(
        engine: Engine, redis_client: redis.Redis, stream_prefix: str) -> None:
    BarWriter(engine, None).write(_minutes(4))
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix)

    started, started_ms = time.monotonic(), time.time() * 1000
    result = replay_days(engine, producer, [DAY], speed=600.0)  # a minute every 0.1 s
    elapsed = time.monotonic() - started

    entries = redis_client.xrange(producer.key)
    envelopes = [CODEC.decode(fields[b"envelope"]) for _, fields in entries]
    assert (result.days, result.minutes, result.published) == (1, 4, 12)
    assert [(e.payload.start.minute, e.payload.symbol) for e in envelopes] == \
        [(30 + m, s) for m in range(4) for s in ("I:SPX", "QQQ", "SPY")]
    assert {e.source for e in envelopes} == {"replay"}
    first_of_minute = [int(entries[i][0].split(b"-")[0]) for i in (0, 3, 6, 9)]
    offsets_ms = [at - started_ms for at in first_of_minute]  # Redis stamps entries with its wall clock
    assert all(offset >= 100 * k - 5 for k, offset in enumerate(offsets_ms)), offsets_ms  # never early
    assert 0.29 <= elapsed < 5.0


def test_cli_backfills_the_synthetic_market_then_replays_the_day_at_max_speed(
        migrated_database_url: str, redis_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
           "POLYGON_API_KEY": ""}
    runner = CliRunner()
    backfill = runner.invoke(app, ["ingest", "backfill", "--symbols", "SPY,QQQ,I:SPX", "--from", "2025-07-03",
                                   "--to", "2025-07-04"], env=env)
    assert backfill.exit_code == 0, backfill.output
    assert "source: synthetic (no POLYGON_API_KEY)" in backfill.output
    engine = make_engine(migrated_database_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM bars")).scalar_one()
            regular = connection.execute(text(
                "SELECT symbol, count(*) FROM bars WHERE session = 'regular' GROUP BY symbol")).all()
    finally:
        engine.dispose()
    assert dict(regular) == {"SPY": 210, "QQQ": 210, "I:SPX": 210}  # early close, holiday has nothing
    stream = stream_prefix + streams.MD_BARS
    assert redis_client.xlen(stream) == stored

    replay = runner.invoke(app, ["ingest", "replay", "--date", "2025-07-03", "--speed", "max"], env=env)
    assert replay.exit_code == 0, replay.output
    assert f"{stored} bars" in replay.output
    assert redis_client.xlen(stream) == 2 * stored
    replayed = [CODEC.decode(fields[b"envelope"]) for _, fields in redis_client.xrange(stream)][stored:]
    keys = [(e.payload.start, e.payload.symbol) for e in replayed]
    assert keys == sorted(keys)
