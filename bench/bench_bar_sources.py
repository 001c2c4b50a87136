"""Bar sources and data quality: file read + session labelling + validation throughput on the real
SPY July 2025 file, and a REST backfill through the fake Polygon server (cold, then from cache)."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from scalper_ingestion.quality import reason_counts, validate
from scalper_ingestion.sources.cache import AggsCache
from scalper_ingestion.sources.files import PolygonFileSource
from scalper_ingestion.sources.polygon_rest import PolygonRestSource, RestPolicy
from scalper_shared.clock import FakeClock
from scalper_shared.core.calendar import trading_day
from tests.conftest import SHARED_DATA
from tests.fakes.polygon_rest import FakePolygonRest, minute_bars


def _file_bench() -> None:
    path = SHARED_DATA / "SPY_1m_2025-07.csv.gz"
    started = time.perf_counter()
    trading_day(date(2025, 7, 1))
    print(f"calendar first load (pandas-market-calendars, once per process): {time.perf_counter() - started:.2f}s")
    started = time.perf_counter()
    batches = list(PolygonFileSource(path, "SPY", chunk_rows=50_000).batches())
    read_s = time.perf_counter() - started
    frame = pd.concat(batches, ignore_index=True)
    started = time.perf_counter()
    clean, quarantined = validate(frame)
    validate_s = time.perf_counter() - started
    print(f"file read+label: {len(frame):,} rows in {read_s:.2f}s ({len(frame) / read_s:,.0f} rows/s)")
    print(f"validate:        {len(frame):,} rows in {validate_s:.3f}s ({len(frame) / validate_s:,.0f} rows/s); "
          f"clean {len(clean):,}, quarantined {reason_counts(quarantined)}")


def _rest_bench() -> None:
    days = [date(2025, 7, d) for d in (1, 2, 3, 7, 8, 9, 10, 11, 14, 15)]
    bars = [bar for day in days for bar in minute_bars(day, 960, first_et="04:00")]
    sleeps: list[float] = []
    with FakePolygonRest({"SPY": bars}, page_size=5_000) as fake, tempfile.TemporaryDirectory() as tmp:
        def run() -> tuple[int, float]:
            source = PolygonRestSource("test-key", ["SPY"], days[0], days[-1], base_url=fake.url,
                                       policy=RestPolicy(requests_per_minute=5), cache=AggsCache(Path(tmp)),
                                       clock=FakeClock(datetime(2025, 8, 1, tzinfo=UTC)), sleep=sleeps.append)
            started = time.perf_counter()
            rows = sum(len(b) for b in source.batches())
            return rows, time.perf_counter() - started

        cold_rows, cold_s = run()
        cold_requests = len(fake.aggs_requests())
        warm_rows, warm_s = run()
        warm_requests = len(fake.aggs_requests()) - cold_requests
    print(f"REST cold:  {cold_rows:,} bars, {cold_requests} requests, {cold_s:.2f}s wall "
          f"(rate-limit waits at 5/min would add {sum(sleeps):.0f}s)")
    print(f"REST cache: {warm_rows:,} bars, {warm_requests} requests, {warm_s:.2f}s wall")


def main() -> None:
    _file_bench()
    _rest_bench()


if __name__ == "__main__":
    main()
