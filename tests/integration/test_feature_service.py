"""The feature pipeline on real Redis and PostgreSQL: stream + table equal the batch build bit for bit; redelivery
is a no-op."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from sqlalchemy import Engine, select

from scalper_features.build import session_feature_days
from scalper_features.pipeline import FeaturePipeline
from scalper_features.repository import load_bar_arrays, stored_features
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.clock import SystemClock
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.features.sessions import session_bounds
from scalper_shared.db import make_engine
from scalper_shared.db.models import features
from scalper_shared.schema import CODEC, streams
from tests.integration.feature_service_support import DAY, EXPECTED_ROWS, bar_messages, day_bars, ingest

pytestmark = pytest.mark.integration
SYMBOLS = ("SPY", "QQQ")


@pytest.fixture
def db(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def read_vectors(client: redis.Redis, prefix: str) -> dict[tuple[str, int], tuple[float, ...]]:
    """Every FeatureVector on the stream by (symbol, minute ms); duplicates must carry equal values."""
    out: dict[tuple[str, int], tuple[float, ...]] = {}
    for _, fields in client.xrange(prefix + streams.FEATURES_VECTORS) or []:
        vector = CODEC.decode(fields[b"envelope"]).payload  # type: ignore[index]
        assert vector.spec_hash == FEATURE_SPEC.spec_hash
        key = (vector.symbol, int(vector.minute.timestamp() * 1000))
        assert out.setdefault(key, vector.values) == vector.values, f"{key} published with different values"
    return out


def consume_all(runner: ConsumerRunner, pipeline: FeaturePipeline) -> None:
    while runner.poll(threading.Event()):
        pass
    pipeline.flush_expired()


def make_pipeline(db: Engine, client: redis.Redis, prefix: str) -> tuple[FeaturePipeline, ConsumerRunner]:
    producer = StreamProducer(client, streams.FEATURES_VECTORS, maxlen=100_000, prefix=prefix)
    pipeline = FeaturePipeline(SYMBOLS, db, producer, SystemClock(), wait_s=30.0)
    pipeline.recover()
    runner = ConsumerRunner(client, streams.MD_BARS, "features", "test", pipeline.handle,
                            config=ConsumerConfig(batch_size=50, block_ms=0), prefix=prefix)
    return pipeline, runner


def test_service_vectors_equal_the_batch_build_of_the_same_bars(
        db: Engine, redis_client: redis.Redis, stream_prefix: str, shared_data: Path, tmp_path: Path,
        migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = day_bars(shared_data)
    ingest(db, redis_client, stream_prefix, bar_messages(bars))
    pipeline, runner = make_pipeline(db, redis_client, stream_prefix)
    consume_all(runner, pipeline)
    vectors = read_vectors(redis_client, stream_prefix)

    bounds = session_bounds(DAY)
    assert bounds is not None
    with db.connect() as connection:  # the batch build of the stored bars, as training computes it
        stored_bars = load_bar_arrays(connection, SYMBOLS, bounds.open_ms, bounds.close_ms)
    days = session_feature_days(bounds, stored_bars, SYMBOLS)
    assert [(d.symbol, d.day) for d in days] == [("SPY", DAY), ("QQQ", DAY)]
    for day in days:
        assert (len(day), int((~day.real).sum())) == EXPECTED_ROWS[day.symbol]
        streamed = np.array([vectors[(day.symbol, t)] for t in day.minutes.tolist()])
        np.testing.assert_array_equal(streamed, day.values)  # bit for bit
    assert len(vectors) == sum(len(d) for d in days)
    with db.connect() as connection:
        stored = stored_features(connection, SYMBOLS, FEATURE_SPEC.spec_hash)
        assert connection.execute(select(features.c.published).where(~features.c.published)).all() == []
    assert {(r.symbol, r.minute_ms): r.values for r in stored} == vectors


def test_redelivered_and_repeated_bars_change_nothing(db: Engine, redis_client: redis.Redis, stream_prefix: str,
                                                      shared_data: Path) -> None:
    messages = bar_messages(day_bars(shared_data))[:300]
    ingest(db, redis_client, stream_prefix, messages)
    pipeline, runner = make_pipeline(db, redis_client, stream_prefix)
    consume_all(runner, pipeline)
    with db.connect() as connection:
        before = connection.execute(select(features).order_by(features.c.symbol, features.c.minute)).all()
    published = redis_client.xlen(stream_prefix + streams.FEATURES_VECTORS)

    ingest(db, redis_client, stream_prefix, messages[:200])  # the same bars again
    consume_all(runner, pipeline)

    with db.connect() as connection:
        after = connection.execute(select(features).order_by(features.c.symbol, features.c.minute)).all()
    assert after == before
    assert redis_client.xlen(stream_prefix + streams.FEATURES_VECTORS) == published
    assert published == len(before) > 200
