"""File -> database -> md.bars ingestion speed on the real SPY files (goal: 50,000 bars/s).

Each run uses a fresh temporary database on ``BENCH_POSTGRES_URL`` (default: the local server) and a
private stream prefix on ``BENCH_REDIS_URL`` (default: local Redis db 15); both are removed at the end.
Prints the end-to-end rate of ``scalper ingest file`` (parse, validate, upsert + commit, encode,
publish; publishing a committed slice overlaps writing the next), the CPU seconds of this process,
the PostgreSQL backend and Redis during it, the rate of an identical re-import, and what each stage
costs when run one after the other.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
import redis
from sqlalchemy import text

from bench.procstat import cpu_seconds
from scalper_ingestion.backfill import run_backfill
from scalper_ingestion.envelopes import encode_bar_envelopes
from scalper_ingestion.quality import validate
from scalper_ingestion.sources.base import BAR_COLUMNS
from scalper_ingestion.sources.files import PolygonFileSource
from scalper_ingestion.writer import BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.core.calendar import trading_days
from scalper_shared.db import bulk_upsert, make_engine, migrate
from scalper_shared.db.models import bars
from scalper_shared.schema import streams

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
DATA = Path(os.environ.get("SCALPER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = ("SPY_1m_2025-07.csv.gz", "SPY_1m_2025-08_2025-10.csv.gz")
GOAL = 50_000
T = TypeVar("T")


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"scalper_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{ADMIN_URL.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
        migrate(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def private_stream(client: redis.Redis) -> Iterator[StreamProducer]:
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    try:
        yield StreamProducer(client, streams.MD_BARS, maxlen=1_000_000, prefix=prefix)
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


def timed(stage: dict[str, float], name: str, work: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = work()
    stage[name] = stage.get(name, 0.0) + time.perf_counter() - started
    return result


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}s"


def end_to_end(paths: list[Path], client: redis.Redis) -> None:
    with fresh_database() as url, private_stream(client) as producer:
        engine = make_engine(url)
        try:
            writer = BarWriter(engine, producer)
            with engine.connect() as connection:  # the pooled connection the writer will reuse
                database_pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
            redis_pid = int(client.info("server")["process_id"])
            for label in ("first import", "identical re-import"):
                cpu_before = (time.process_time(), cpu_seconds(database_pid), cpu_seconds(redis_pid))
                started = time.perf_counter()
                total = sum((run_backfill(PolygonFileSource(path, "SPY"), writer) for path in paths[1:]),
                            run_backfill(PolygonFileSource(paths[0], "SPY"), writer))
                seconds = time.perf_counter() - started
                cpu = [after - before if after is not None and before is not None else None for after, before in
                       zip((time.process_time(), cpu_seconds(database_pid), cpu_seconds(redis_pid)), cpu_before,
                           strict=True)]
                print(f"{label:20s}: {total.received:,} rows ({total.inserted:,} inserted, {total.unchanged:,} "
                      f"unchanged, {total.quarantined} quarantined, {total.published:,} published) in "
                      f"{seconds:.2f}s = {total.received / seconds:,.0f} bars/s (goal {GOAL:,})")
                print(f"{'':20s}  CPU seconds: this process {_seconds(cpu[0])}, PostgreSQL backend "
                      f"{_seconds(cpu[1])}, Redis {_seconds(cpu[2])} ({os.cpu_count()} cores)")
            assert client.xlen(producer.key) == total.stored
        finally:
            engine.dispose()


def stages(paths: list[Path], client: redis.Redis) -> None:
    spent: dict[str, float] = {}
    rows = 0
    with fresh_database() as url, private_stream(client) as producer:
        engine = make_engine(url)
        try:
            for path in paths:
                for batch in timed(spent, "read + parse + sessions", lambda p=path: list(PolygonFileSource(p, "SPY").batches())):
                    rows += len(batch)
                    clean, _ = timed(spent, "validate", lambda b=batch: validate(b))

                    def upsert(c=clean) -> object:
                        with engine.begin() as connection:
                            return bulk_upsert(connection, bars, c[list(BAR_COLUMNS)], returning=True)
                    timed(spent, "upsert + commit", upsert)
                    encoded = timed(spent, "encode envelopes", lambda c=clean: encode_bar_envelopes(
                        c, source="ingestion", ts_init=datetime.now(UTC)))
                    timed(spent, "publish (XADD)", lambda e=encoded: producer.publish_encoded(e))
        finally:
            engine.dispose()
    total = sum(spent.values())
    print(f"stages one after the other over {rows:,} rows ({total:.2f}s, {rows / total:,.0f} bars/s):")
    for name, seconds in spent.items():
        print(f"  {name:26s} {seconds:6.2f}s  {rows / seconds:>10,.0f} bars/s  {100 * seconds / total:4.0f}%")


def main() -> None:
    paths = [DATA / name for name in FILES if (DATA / name).exists()]
    if not paths:
        raise SystemExit(f"no SPY files under {DATA}")
    print(f"files: {', '.join(p.name for p in paths)}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    started = time.perf_counter()
    trading_days(date(2025, 1, 1), date(2025, 12, 31))  # the calendar's one-time schedule build
    print(f"calendar schedule of 2025 built once per process in {time.perf_counter() - started:.2f}s "
          "(not in the rates below)")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        end_to_end(paths, client)
        stages(paths, client)
    finally:
        client.close()


if __name__ == "__main__":
    main()
