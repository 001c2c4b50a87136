"""Bulk upsert (COPY + one INSERT .. ON CONFLICT) vs SQLAlchemy ORM ``add_all`` on 200,000 bars.

Runs in a fresh temporary database on ``BENCH_POSTGRES_URL`` (default: the local server), dropped at
the end. Bars are a seeded random walk over real NYSE minutes: SPY and QQQ with extended hours and
volume, SPX regular hours with NULL volume. Goals: bulk >= 100,000 bars/s and >= 10x the ORM.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench.procstat import cpu_seconds
from scalper_shared.core.calendar import trading_days
from scalper_shared.db import BarRow, bars, bulk_upsert, downgrade, make_engine, migrate

N_BARS = 200_000
SEED = 7
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SYMBOLS = {"SPY": (560.0, True), "QQQ": (480.0, True), "SPX": (5600.0, False)}  # price, extended+volume


def _day_minutes(day: Any, extended: bool) -> tuple[pd.DatetimeIndex, np.ndarray]:
    first, last = (day.pre_open, day.post_close) if extended else (day.open, day.close)
    starts = pd.date_range(first, last, freq="1min", inclusive="left")
    session = np.where(starts < day.open, "pre", np.where(starts < day.close, "regular", "post"))
    return starts, session


def _walk(rng: np.random.Generator, price: float, n: int, has_volume: bool) -> dict[str, Any]:
    closes = price * np.exp(np.cumsum(rng.normal(0.0, 0.0004, n)))
    opens = np.concatenate([[price], closes[:-1]])
    wick = np.abs(rng.normal(0.0, 0.0002, (2, n)))
    high = np.maximum(opens, closes) * (1 + wick[0])
    low = np.minimum(opens, closes) * (1 - wick[1])
    volume = rng.gamma(2.0, 20_000.0, n).round() if has_volume else np.full(n, np.nan)
    trades = rng.poisson(300, n).astype(float) if has_volume else np.full(n, np.nan)
    return {"open": opens, "high": high, "low": low, "close": closes, "volume": volume,
            "vwap": (high + low + closes) / 3 if has_volume else np.full(n, np.nan), "trade_count": trades}


def realistic_bars(n: int = N_BARS, seed: int = SEED) -> pd.DataFrame:
    """``n`` bars over consecutive real sessions from 2025-01-02, columns named like ``bars``."""
    rng = np.random.default_rng(seed)
    frames, total = [], 0
    for day in trading_days(date(2025, 1, 2), date(2026, 12, 31)):
        for symbol, (price, extended) in SYMBOLS.items():
            starts, session = _day_minutes(day, extended)
            walk = _walk(rng, price, len(starts), extended)
            frames.append(pd.DataFrame({"symbol": symbol, "start": starts, **walk, "session": session,
                                        "source": "bench"}))
            total += len(starts)
        if total >= n:
            break
    frame = pd.concat(frames, ignore_index=True).head(n)
    frame["trade_count"] = frame["trade_count"].astype("Int64")
    return frame


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain dicts (NaN/NA -> None, python scalars), the input an ORM caller would hold."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


@contextmanager
def temporary_database() -> Iterator[str]:
    name = f"scalper_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_table(engine: Engine) -> None:
    downgrade(engine, "base")
    migrate(engine)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(bars)).scalar_one())


def time_bulk(engine: Engine, rows: Any, label: str) -> float:
    """Wall-clock bars/s (printed with the client + server CPU seconds: the machine may be shared)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with engine.begin() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        server_started = cpu_seconds(pid)
        result = bulk_upsert(conn, bars, rows)
        server_ended = cpu_seconds(pid)
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    rate = result.staged / elapsed
    server = "?" if server_started is None or server_ended is None else f"{server_ended - server_started:.2f}s"
    print(f"{label:<34} {rate:>11,.0f} bars/s  ({elapsed:.2f}s wall, CPU client {client_cpu:.2f}s"
          f" + server {server}; inserted {result.inserted:,}, updated {result.updated:,},"
          f" unchanged {result.unchanged:,})", flush=True)
    return rate


def time_orm(engine: Engine, records: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    with Session(engine) as session:
        session.add_all([BarRow(**record) for record in records])
        session.commit()
    elapsed = time.perf_counter() - started
    rate = len(records) / elapsed
    print(f"{'ORM add_all + commit':<34} {rate:>11,.0f} bars/s  ({elapsed:.2f}s)", flush=True)
    return rate


def main() -> None:
    frame = realistic_bars()
    records = as_records(frame)
    print(f"{len(frame):,} bars: {frame['symbol'].nunique()} symbols,"
          f" {frame['start'].min():%Y-%m-%d} .. {frame['start'].max():%Y-%m-%d}", flush=True)
    with temporary_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            bulk = time_bulk(engine, frame, "bulk upsert (DataFrame, new)")
            reimport = time_bulk(engine, frame, "bulk re-import (all unchanged)")
            _fresh_table(engine)
            bulk_dicts = time_bulk(engine, records, "bulk upsert (dicts, new)")
            _fresh_table(engine)
            orm = time_orm(engine, records)
            assert _count(engine) == len(frame)
        finally:
            engine.dispose()
    print(f"bulk / ORM: {bulk / orm:.1f}x (DataFrame), {bulk_dicts / orm:.1f}x (dicts);"
          f" re-import {reimport:,.0f} bars/s", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are wall-clock)")
    print(f"goals: bulk >= 100,000 bars/s: {'met' if bulk >= 100_000 else 'MISSED'};"
          f" >= 10x ORM: {'met' if bulk / orm >= 10 else 'MISSED'}", flush=True)


if __name__ == "__main__":
    main()
