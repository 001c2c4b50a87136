"""Features that scale without corrupting (issue #16 item 4), on a real day of ../shared/data.

- Two replicas of one universe: one owns the lease and computes, the other stands by and takes over
  when the owner stops; every (symbol, minute) vector is published exactly once and equals the batch
  build bit for bit.
- ``scalper ingest file`` of the SPY file, then of the QQQ file: the SPY minutes released without
  QQQ are counted, logged and marked ``missing_peers``; when QQQ arrives each is published once more
  with its full context; the last vector of every minute and the table equal the batch build.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from sqlalchemy import Engine
from typer.testing import CliRunner

from scalper_cli.main import app as cli_app
from scalper_features import metrics
from scalper_features.build import session_feature_days
from scalper_features.main import replica_workers
from scalper_features.pipeline import FeaturePipeline
from scalper_features.repository import load_session_bars, stored_features
from scalper_features.settings import FeaturesSettings
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.bus import group_backlog as bus_group_backlog
from scalper_shared.clock import SystemClock
from scalper_shared.core.features import FEATURE_SPEC, BarArrays, FeatureDay
from scalper_shared.core.features.sessions import session_bounds, session_of
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, streams
from scalper_shared.schema.messages import FeatureVector
from scalper_shared.settings import load_settings
from tests.integration.feature_service_support import DAY, EXPECTED_ROWS, bar_messages, day_bars, ingest
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
SYMBOLS = ("SPY", "QQQ")
TOTAL_ROWS = sum(rows for rows, _ in EXPECTED_ROWS.values())


@pytest.fixture
def db(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def group_backlog(client: redis.Redis, key: str, group: str) -> int | None:
    backlog = bus_group_backlog(client, key, group)
    return None if backlog is None else backlog.unprocessed


def all_vectors(client: redis.Redis, prefix: str) -> list[FeatureVector]:
    """Every FeatureVector on the stream, in stream order."""
    return [CODEC.decode(fields[b"envelope"]).payload  # type: ignore[misc]
            for _, fields in client.xrange(prefix + streams.FEATURES_VECTORS) or []]


def key(vector: FeatureVector) -> tuple[str, int]:
    return vector.symbol, int(vector.minute.timestamp() * 1000)


def batch_days(bars: dict[str, BarArrays]) -> dict[str, FeatureDay]:
    bounds = session_of(int(bars["SPY"].t[len(bars["SPY"]) // 2]))
    assert bounds is not None
    return {d.symbol: d for d in session_feature_days(bounds, bars, SYMBOLS)}


def assert_equal_to_batch(final: dict[tuple[str, int], FeatureVector], expected: dict[str, FeatureDay]) -> None:
    assert len(final) == sum(len(d) for d in expected.values()) == TOTAL_ROWS
    for symbol, day in expected.items():
        vectors = [final[(symbol, t)] for t in day.minutes.tolist()]
        assert all(v.unavailable == () for v in vectors)
        np.testing.assert_array_equal(np.array([v.values for v in vectors]), day.values)  # bit for bit


# -- two replicas ---------------------------------------------------------------------------------

def test_two_replicas_publish_every_vector_of_the_day_once_equal_to_the_batch_build(
        db: Engine, redis_client: redis.Redis, redis_url: str, stream_prefix: str, migrated_database_url: str,
        shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
                        "FEATURES_SYMBOLS": ",".join(SYMBOLS), "FEATURES_MINUTE_WAIT_S": "120",
                        "FEATURES_LEASE_TTL_MS": "1500", "CONSUMER_BLOCK_MS": "50"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(FeaturesSettings)
    replicas = [replica_workers(settings, redis_client, db, f"replica-{i}") for i in range(2)]
    bars = day_bars(shared_data)
    messages = bar_messages(bars)
    half = len(messages) // 2
    for workers, _ in replicas:
        for worker in workers:
            worker.start()
    try:
        owner = wait_until(lambda: next((o for _, o in replicas if o.owned), None), 10, "an owner")
        assert sum(o.owned for _, o in replicas) == 1
        for chunk in np.array_split(np.arange(half), 8):
            ingest(db, redis_client, stream_prefix, [messages[i] for i in chunk])
            time.sleep(0.05)
        wait_until(lambda: group_backlog(redis_client, stream_prefix + streams.MD_BARS, "features") == 0, 30,
                   "the owner consuming the first half")
        assert len(all_vectors(redis_client, stream_prefix)) > 300
        owner_workers = next(w for w, o in replicas if o is owner)
        for worker in owner_workers:  # the owner stops (releasing its lease); the standby takes over
            worker.stop()
        for worker in owner_workers:
            worker.join(10)
        standby = next(o for _, o in replicas if o is not owner)
        wait_until(lambda: standby.owned, 10, "the standby taking the lease over")

        for chunk in np.array_split(np.arange(half, len(messages)), 8):
            ingest(db, redis_client, stream_prefix, [messages[i] for i in chunk])
            time.sleep(0.05)
        wait_until(lambda: len(all_vectors(redis_client, stream_prefix)) >= TOTAL_ROWS, 60, "every vector of the day")
        time.sleep(0.5)  # nothing more may come
    finally:
        for workers, _ in replicas:
            for worker in workers:
                worker.stop()
        for workers, _ in replicas:
            for worker in workers:
                worker.join(10)

    vectors = all_vectors(redis_client, stream_prefix)
    assert len(vectors) == len({key(v) for v in vectors}) == TOTAL_ROWS  # exactly once
    assert_equal_to_batch({key(v): v for v in vectors}, batch_days(bars))
    with db.connect() as connection:
        stored = stored_features(connection, SYMBOLS, FEATURE_SPEC.spec_hash)
    assert {(r.symbol, r.minute_ms): r.values for r in stored} == {key(v): v.values for v in vectors}


# -- one symbol's file at a time --------------------------------------------------------------------

def write_file(bars: BarArrays, path: Path) -> Path:
    pd.DataFrame({"t": bars.t, "o": bars.o, "h": bars.h, "l": bars.l, "c": bars.c, "v": bars.v}).to_csv(path, index=False)
    return path


def import_file(path: Path, symbol: str, database_url: str, redis_url: str, prefix: str) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": prefix, "POLYGON_API_KEY": ""}
    result = CliRunner().invoke(cli_app, ["ingest", "file", str(path), "--symbol", symbol], env=env)
    assert result.exit_code == 0, result.output


def test_importing_spy_then_qqq_file_by_file_yields_the_batch_build(
        db: Engine, redis_client: redis.Redis, redis_url: str, stream_prefix: str, migrated_database_url: str,
        shared_data: Path, tmp_path: Path) -> None:
    bars = day_bars(shared_data)
    producer = StreamProducer(redis_client, streams.FEATURES_VECTORS, maxlen=100_000, prefix=stream_prefix)
    pipeline = FeaturePipeline(SYMBOLS, db, producer, SystemClock(), wait_s=0.2)
    pipeline.recover()
    runner = ConsumerRunner(redis_client, streams.MD_BARS, "features", "test", pipeline.handle,
                            config=ConsumerConfig(batch_size=100, block_ms=0), prefix=stream_prefix)
    timed_out_before = metrics.MINUTES_TIMED_OUT._value.get()
    superseded_before = metrics.VECTORS_SUPERSEDED._value.get()

    def consume() -> None:
        while runner.poll(threading.Event()):
            pass
        time.sleep(0.3)  # past the wait: the minutes without the other symbol are released
        pipeline.flush_expired()

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("scalper_features.pipeline").addHandler(handler)
    import_file(write_file(bars["SPY"], tmp_path / "spy.csv"), "SPY", migrated_database_url, redis_url, stream_prefix)
    consume()
    spy_alone = all_vectors(redis_client, stream_prefix)
    spy_rows = EXPECTED_ROWS["SPY"][0]
    assert len(spy_alone) == spy_rows and {v.symbol for v in spy_alone} == {"SPY"}
    assert all(v.unavailable == ("peer_ret_5",) for v in spy_alone)  # never silently without its peer (SPY is
    # the reference of SPY,QQQ: its relative strength needs no other symbol)
    assert metrics.MINUTES_TIMED_OUT._value.get() - timed_out_before == spy_rows - EXPECTED_ROWS["SPY"][1]
    assert any("released after" in r.getMessage() and "without the bars of QQQ" in r.getMessage()
               for r in records)
    logging.getLogger("scalper_features.pipeline").removeHandler(handler)

    import_file(write_file(bars["QQQ"], tmp_path / "qqq.csv"), "QQQ", migrated_database_url, redis_url, stream_prefix)
    consume()
    vectors = all_vectors(redis_client, stream_prefix)
    final = {key(v): v for v in vectors}  # the last vector of each minute supersedes the earlier one
    assert_equal_to_batch(final, batch_days(bars))
    assert len(vectors) == TOTAL_ROWS + spy_rows  # each SPY minute once marked, once complete; QQQ once
    assert metrics.VECTORS_SUPERSEDED._value.get() - superseded_before == spy_rows
    with db.connect() as connection:
        stored = stored_features(connection, SYMBOLS, FEATURE_SPEC.spec_hash)
    assert {(r.symbol, r.minute_ms): (r.values, r.unavailable) for r in stored} == {
        k: (v.values, ()) for k, v in final.items()}


# -- an equity without volume (issue #15 item 6) ----------------------------------------------------

def test_an_equity_imported_without_volume_has_its_volume_features_marked_on_both_paths(
        db: Engine, redis_client: redis.Redis, redis_url: str, stream_prefix: str, migrated_database_url: str,
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = day_bars(shared_data)
    spy = write_file(bars["SPY"], tmp_path / "spy.csv")
    pd.read_csv(spy).drop(columns="v").to_csv(spy, index=False)
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
           "POLYGON_API_KEY": ""}
    imported = CliRunner().invoke(cli_app, ["ingest", "file", str(spy), "--symbol", "SPY", "--no-volume"], env=env)
    assert imported.exit_code == 0, imported.output
    import_file(write_file(bars["QQQ"], tmp_path / "qqq.csv"), "QQQ", migrated_database_url, redis_url, stream_prefix)
    producer = StreamProducer(redis_client, streams.FEATURES_VECTORS, maxlen=100_000, prefix=stream_prefix)
    pipeline = FeaturePipeline(SYMBOLS, db, producer, SystemClock(), wait_s=0.2)
    pipeline.recover()
    runner = ConsumerRunner(redis_client, streams.MD_BARS, "features", "test", pipeline.handle,
                            config=ConsumerConfig(batch_size=1000, block_ms=0), prefix=stream_prefix)
    while runner.poll(threading.Event()):
        pass
    time.sleep(0.3)
    pipeline.flush_expired()

    final = {key(v): v for v in all_vectors(redis_client, stream_prefix)}
    assert {v.unavailable for k, v in final.items() if k[0] == "SPY"} == {("dist_vwap", "volume_z")}
    assert {v.unavailable for k, v in final.items() if k[0] == "QQQ"} == {()}  # QQQ's own volume is there
    bounds = session_bounds(DAY)
    assert bounds is not None
    with db.connect() as connection:  # the batch build of the stored bars (SPY's stored without volume)
        loaded = load_session_bars(connection, SYMBOLS, bounds.open_ms, bounds.close_ms)
    days = {d.symbol: d for d in session_feature_days(bounds, loaded.bars, SYMBOLS,
                                                      without_volume=loaded.without_volume)}
    assert days["SPY"].unavailable == ("dist_vwap", "volume_z") and days["QQQ"].unavailable == ()
    assert np.all(days["SPY"].values[:, FEATURE_SPEC.index("volume_z")] == 0.0)
    for symbol, day in days.items():
        streamed = np.array([final[(symbol, t)].values for t in day.minutes.tolist()])
        np.testing.assert_array_equal(streamed, day.values)
    with db.connect() as connection:
        stored = stored_features(connection, SYMBOLS, FEATURE_SPEC.spec_hash)
    assert {r.unavailable for r in stored if r.symbol == "SPY"} == {("dist_vwap", "volume_z")}
