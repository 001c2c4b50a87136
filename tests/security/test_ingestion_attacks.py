"""Attacks on ingestion (issue #15 items 1, 5 and 6): time sanity, plausibility, nothing lost between
the database and md.bars, and one clean line for every unreadable file. Real PostgreSQL and Redis."""

from __future__ import annotations

import gzip
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_ingestion.backfill import ImportFailed, run_backfill
from scalper_ingestion.quality import QualityRules, validate
from scalper_ingestion.sources.base import from_polygon_aggs
from scalper_ingestion.writer import BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import FakeClock
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, streams

pytestmark = pytest.mark.integration

NOW = datetime(2025, 8, 22, 20, 0, tzinfo=UTC)
DAY_OPEN_MS = int(datetime(2025, 8, 20, 13, 30, tzinfo=UTC).timestamp() * 1000)


def aggs(n: int, *, start_ms: int = DAY_OPEN_MS, price: float = 600.0, seed: int = 0) -> pd.DataFrame:
    """``n`` Polygon aggregates a minute apart (regular session of 2025-08-20 onwards), a gentle walk."""
    rng = np.random.default_rng(seed)
    close = price + np.cumsum(rng.normal(0, 0.05, n))
    return pd.DataFrame({"t": start_ms + 60_000 * np.arange(n), "o": close, "h": close + 0.05, "l": close - 0.05,
                         "c": close, "v": rng.integers(1_000, 50_000, n).astype(float)})


def regular_aggs(n: int) -> pd.DataFrame:
    """``n`` aggregates inside regular sessions (390 a day from 2025-08-20), so none is off-calendar."""
    days = [datetime(2025, 8, d, 13, 30, tzinfo=UTC) for d in (18, 19, 20, 21, 22)]
    frames = [aggs(min(390, n - 390 * k), start_ms=int(day.timestamp() * 1000), seed=k)
              for k, day in enumerate(days) if n > 390 * k]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def stream_ids(client: redis.Redis, prefix: str) -> set[str]:
    return {CODEC.decode(fields[b"envelope"]).id for _, fields in client.xrange(prefix + streams.MD_BARS)}


def stored_count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM bars")).scalar_one())


def stored_ids(engine: Engine) -> set[str]:
    from scalper_ingestion.envelopes import envelope_ids
    from scalper_ingestion.sources.base import conform_bars

    with engine.connect() as c:
        rows = pd.read_sql(text("SELECT symbol, start, open, high, low, close, volume, vwap, trade_count, session, "
                                "source FROM bars"), c)
    return set(envelope_ids(conform_bars(rows)))


class ListSource:
    def __init__(self, *batches: pd.DataFrame, between=None) -> None:  # noqa: ANN001
        self._batches, self._between = batches, between

    def batches(self) -> Iterator[pd.DataFrame]:
        for k, batch in enumerate(self._batches):
            if k and self._between is not None:
                self._between(k)
            yield batch


# -- item 1: time sanity in ingestion ------------------------------------------------------------

def test_500_bars_dated_2075_are_quarantined_not_stored_or_published(engine, redis_client, stream_prefix) -> None:  # noqa: ANN001
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=10_000, prefix=stream_prefix)
    future = aggs(500, start_ms=int(datetime(2075, 8, 20, 13, 30, tzinfo=UTC).timestamp() * 1000))
    result = BarWriter(engine, producer, clock=FakeClock(NOW)).write(from_polygon_aggs(future, "I:SPX", "file"))
    assert (result.stored, result.quarantined, result.reasons) == (0, 500, {"timestamp_in_future": 500})
    assert stored_count(engine) == 0 and stream_ids(redis_client, stream_prefix) == set()


def test_bars_before_the_earliest_date_or_off_the_minute_grid_are_quarantined() -> None:
    seconds = aggs(3).assign(t=lambda f: f["t"] // 1000)  # epoch seconds read as ms: January 1970
    off_grid = aggs(3).assign(t=lambda f: f["t"] + 1_500)
    clean, quarantined = validate(from_polygon_aggs(pd.concat([seconds, off_grid]), "SPY", "file"),
                                  QualityRules(now=NOW))
    assert clean.empty
    assert sorted(quarantined["reason"]) == ["timestamp_before_earliest"] * 3 + ["timestamp_not_on_minute"] * 3


# -- item 6: plausibility ------------------------------------------------------------------------

def test_absurd_prices_spikes_volumes_and_counts_are_quarantined_with_their_rule(engine) -> None:  # noqa: ANN001
    raw = aggs(40).astype({"v": object}).assign(n=100)
    raw.loc[3, ["o", "h", "l", "c"]] = 1e308
    raw.loc[10, ["o", "h", "l", "c"]] = raw.loc[10, "c"] * 100  # a 100x spike
    raw.loc[15, "v"] = 1e30
    raw.loc[20, "v"] = "abc"
    raw.loc[25, "n"] = 2**32 + 7
    raw.loc[30, "n"] = 10**12
    raw.loc[35, "v"] = -5
    result = BarWriter(engine, None, clock=FakeClock(NOW)).write(from_polygon_aggs(raw, "SPY", "file"))
    with engine.connect() as c:
        reasons = dict(c.execute(text("SELECT start, reason FROM bars_quarantine")).all())
        counts = c.execute(text("SELECT trade_count FROM bars_quarantine WHERE reason = 'absurd_trade_count' "
                                "ORDER BY trade_count")).scalars().all()
    by_row = {int((start.timestamp() * 1000 - DAY_OPEN_MS) // 60_000): reason for start, reason in reasons.items()}
    assert by_row == {3: "absurd_price", 10: "price_spike", 15: "absurd_volume", 20: "non_finite_volume",
                      25: "absurd_trade_count", 30: "absurd_trade_count", 35: "negative_volume"}
    assert counts == [2**32 + 7, 10**12]  # kept as received (BIGINT), not wrapped to 7
    assert result.stored == 33


def test_a_trade_count_above_2_to_the_32_is_stored_exactly(engine) -> None:  # noqa: ANN001
    raw = aggs(5).assign(n=2**32 + 7)
    BarWriter(engine, None, clock=FakeClock(NOW), rules=QualityRules(max_trade_count=10**13)).write(
        from_polygon_aggs(raw, "SPY", "file"))
    with engine.connect() as c:
        assert set(c.execute(text("SELECT trade_count FROM bars")).scalars()) == {2**32 + 7}


def cli(args: list[str], database_url: str, redis_url: str, prefix: str):  # noqa: ANN201
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": prefix, "POLYGON_API_KEY": ""}
    return CliRunner().invoke(app, ["ingest", "file", *args], env=env)


def test_a_file_whose_every_row_is_quarantined_exits_non_zero(tmp_path, migrated_database_url, redis_url,  # noqa: ANN001
                                                             stream_prefix) -> None:
    path = tmp_path / "seconds.csv"
    aggs(50).assign(t=lambda f: f["t"] // 1000).to_csv(path, index=False)
    result = cli([str(path), "--symbol", "SPY"], migrated_database_url, redis_url, stream_prefix)
    assert result.exit_code == 1, result.output
    assert "every one of 50 rows was quarantined (timestamp_before_earliest 50)" in result.output
    assert "epoch milliseconds" in result.output


BROKEN_FILES = {
    "empty.csv": (b"", "empty file"),
    "headerless.csv": (b"1755696600000,600,601,599,600,1000\n1755696660000,600,601,599,600,1000\n",
                       "missing columns"),
    "binary.csv": (bytes(range(128, 256)) * 16, "not a text CSV"),
    "corrupt.csv": (b"t,o,h,l,c,v\n1755696600000,600,601,599,600,1000\n1,2,3,4,5,6,7,8,9\n", "malformed CSV"),
    "out_of_range.csv": (b"t,o,h,l,c,v\n99999999999999999999,600,601,599,600,1000\n", "every one of 1 rows"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_an_unreadable_file_gives_one_line_naming_the_file_and_the_problem(
        name, tmp_path, migrated_database_url, redis_url, stream_prefix) -> None:  # noqa: ANN001
    content, problem = BROKEN_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    result = cli([str(path), "--symbol", "SPY"], migrated_database_url, redis_url, stream_prefix)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and problem in result.output
    assert name in result.output


def test_an_equity_file_without_volume_is_refused_unless_no_volume_is_given(
        tmp_path, migrated_database_url, redis_url, stream_prefix) -> None:  # noqa: ANN001
    path = tmp_path / "spy_no_volume.csv"
    aggs(30).drop(columns="v").to_csv(path, index=False)
    refused = cli([str(path), "--symbol", "SPY"], migrated_database_url, redis_url, stream_prefix)
    assert refused.exit_code == 1 and "no volume column 'v'" in refused.output, refused.output
    accepted = cli([str(path), "--symbol", "SPY", "--no-volume"], migrated_database_url, redis_url, stream_prefix)
    assert accepted.exit_code == 0 and "30 inserted" in accepted.output, accepted.output


# -- item 5: nothing lost between the database and the stream ------------------------------------

class OutOfMemoryAfter(StreamProducer):
    """The real producer until ``budget`` entries went out; then Redis answers OOM, like maxmemory."""

    def __init__(self, *args, budget: int, **kwargs) -> None:  # noqa: ANN002,ANN003
        super().__init__(*args, **kwargs)
        self.budget = budget

    def publish_encoded(self, encoded: list[bytes]) -> list[str]:
        if len(encoded) > self.budget:
            raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
        self.budget -= len(encoded)
        return super().publish_encoded(encoded)


def test_redis_out_of_memory_mid_import_loses_no_bar_and_the_rerun_publishes_the_rest(
        engine, redis_client, stream_prefix) -> None:  # noqa: ANN001
    batch = from_polygon_aggs(regular_aggs(1_800), "SPY", "file")
    sick = OutOfMemoryAfter(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix, budget=500)
    with pytest.raises(ImportFailed) as failed:
        run_backfill(ListSource(batch), BarWriter(engine, sick, clock=FakeClock(NOW)), slice_rows=256)
    committed, published = failed.value.committed.stored, failed.value.published
    assert "OOM" in str(failed.value) and 0 < published < committed <= 1_800
    assert failed.value.pending == committed - published
    healthy = StreamProducer(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix)
    rerun = run_backfill(ListSource(batch), BarWriter(engine, healthy, clock=FakeClock(NOW)), slice_rows=256)
    assert rerun.drained == committed - published  # was "unchanged" and silently lost on 426f8f1
    assert stored_count(engine) == 1_800 and stream_ids(redis_client, stream_prefix) == stored_ids(engine)


def test_an_importer_killed_between_commit_and_publish_loses_nothing(engine, redis_client, stream_prefix) -> None:  # noqa: ANN001
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix)
    writer = BarWriter(engine, producer, clock=FakeClock(NOW))
    for _ in writer.store(from_polygon_aggs(aggs(300), "SPY", "file"), slice_rows=100):
        pass  # committed, then the process "dies" before publishing
    assert stream_ids(redis_client, stream_prefix) == set() and writer.pending() == 300
    assert writer.drain() == 300  # what the ingestion service's publisher and every next import run
    assert stream_ids(redis_client, stream_prefix) == stored_ids(engine) and writer.pending() == 0


def test_the_ingestion_service_publishes_the_outbox_in_the_background(
        engine, migrated_database_url, redis_url, redis_client, stream_prefix, monkeypatch) -> None:  # noqa: ANN001
    from scalper_ingestion.main import outbox_worker
    from scalper_ingestion.settings import IngestionSettings
    from scalper_shared.runtime.bootstrap import connect

    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix)
    for _ in BarWriter(engine, producer, clock=FakeClock(NOW)).store(from_polygon_aggs(aggs(50), "SPY", "f")):
        pass
    for name, value in {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url,
                        "STREAM_PREFIX": stream_prefix, "INGESTION_OUTBOX_INTERVAL_S": "0.1"}.items():
        monkeypatch.setenv(name, value)
    settings = IngestionSettings()
    worker = outbox_worker(settings, connect(settings))
    worker.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while len(stream_ids(redis_client, stream_prefix)) < 50 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        worker.stop()
        worker.join(5)
    assert stream_ids(redis_client, stream_prefix) == stored_ids(engine)


def terminate_backends(database_url: str) -> None:
    """What a PostgreSQL restart does to the importer: every connection to its database is cut."""
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def test_a_postgresql_restart_mid_import_is_retried_with_backoff(
        engine, migrated_database_url, redis_client, stream_prefix) -> None:  # noqa: ANN001
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix)
    batches = [from_polygon_aggs(aggs(100, start_ms=DAY_OPEN_MS + 6_000_000 * k, seed=k), "SPY", "f")
               for k in range(3)]
    source = ListSource(*batches, between=lambda _: terminate_backends(migrated_database_url))
    total = run_backfill(source, BarWriter(engine, producer, clock=FakeClock(NOW)))
    assert total.stored == 300 and stored_count(engine) == 300
    assert stream_ids(redis_client, stream_prefix) == stored_ids(engine)


def test_a_postgresql_restart_in_the_middle_of_a_write_is_retried_with_backoff(
        engine, migrated_database_url, redis_client, stream_prefix, monkeypatch) -> None:  # noqa: ANN001
    """The server goes away inside a slice's transaction (just before its COPY and upsert), not between
    slices, where the pool's pre-ping already replaced the dead connection on 426f8f1."""
    from scalper_shared.db import upsert

    original, calls = upsert._stage_and_upsert, []

    def restart_before_the_second_slice(*args, **kwargs):  # noqa: ANN002,ANN003,ANN202
        calls.append(1)
        if len(calls) == 2:
            terminate_backends(migrated_database_url)
        return original(*args, **kwargs)

    monkeypatch.setattr(upsert, "_stage_and_upsert", restart_before_the_second_slice)
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=100_000, prefix=stream_prefix)
    total = run_backfill(ListSource(from_polygon_aggs(aggs(300), "SPY", "f")),
                         BarWriter(engine, producer, clock=FakeClock(NOW), db_retry_s=30), slice_rows=100)
    assert total.stored == 300 and stored_count(engine) == 300  # 426f8f1: OperationalError, exit 1
    assert stream_ids(redis_client, stream_prefix) == stored_ids(engine)


def test_a_file_with_a_broken_tail_says_what_it_committed_and_published(
        tmp_path, migrated_database_url, redis_url, stream_prefix) -> None:  # noqa: ANN001
    path = tmp_path / "broken_tail.csv.gz"
    start = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1000)
    payload = gzip.compress(aggs(132_480, start_ms=start).to_csv(index=False).encode())  # > one 100,000-row chunk
    path.write_bytes(payload[: len(payload) - 200])  # the tail is cut off
    result = CliRunner().invoke(app, ["ingest", "file", str(path), "--symbol", "SPY"],
                                env={"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url,
                                     "STREAM_PREFIX": stream_prefix, "POLYGON_API_KEY": ""})
    assert result.exit_code == 1, result.output
    line = " ".join(result.output.split())
    assert "truncated or corrupt compressed data" in line and "broken_tail.csv.gz" in line
    assert re.search(r"committed \d+ bars \(\d+ inserted, 0 updated, \d+ quarantined\), published \d+ to md.bars", line)
    committed, published = (int(x) for x in re.search(r"committed (\d+) bars.*published (\d+)", line).groups())
    assert committed > 0 and published == committed  # the first chunk went through; the tail stopped the job


