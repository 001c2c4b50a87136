"""Bulk upsert into the real ``bars`` table of a freshly migrated PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from scalper_shared.db import DuplicateKeyError, bars, bulk_upsert, make_engine

pytestmark = pytest.mark.integration

OPEN_ET_UTC = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def spy_frame(n: int = 50, start: datetime = OPEN_ET_UTC, drift: float = 0.01) -> pd.DataFrame:
    closes = 600 + np.cumsum(np.full(n, drift))
    opens = closes - drift
    return pd.DataFrame({
        "symbol": "SPY",
        "start": pd.date_range(start, periods=n, freq="1min"),
        "open": opens, "high": closes + 0.05, "low": opens - 0.05, "close": closes,
        "volume": np.arange(n, dtype=float) * 100 + 1000, "vwap": closes - 0.001,
        "trade_count": np.arange(n) + 10, "session": "regular", "source": "test",
    })


def spx_records(n: int = 5) -> list[dict[str, Any]]:
    """Index bars: no volume, vwap or trade count."""
    return [{"symbol": "SPX", "start": OPEN_ET_UTC + timedelta(minutes=i), "open": 6200.0 + i,
             "high": 6201.0 + i, "low": 6199.0 + i, "close": 6200.5 + i, "volume": None, "vwap": None,
             "trade_count": None, "session": "regular", "source": "test"} for i in range(n)]


def table_checksum(engine: Engine) -> tuple[int, str]:
    """Row count and md5 of the whole table's contents, audit columns included."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*), md5(coalesce(string_agg(b::text, '|' ORDER BY symbol, start), ''))"
            " FROM bars b")).one()
    return int(row[0]), str(row[1])


def upsert(engine: Engine, rows: Any, **kwargs: Any) -> Any:
    with engine.begin() as conn:
        return bulk_upsert(conn, bars, rows, **kwargs)


def test_new_bars_are_inserted_with_exact_values(engine: Engine) -> None:
    frame = spy_frame()
    result = upsert(engine, frame)
    assert (result.staged, result.inserted, result.updated, result.unchanged) == (50, 50, 0, 0)
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(select(bars).order_by(bars.c.start)).mappings().all())
    assert stored["start"].tolist() == frame["start"].tolist()
    for column in ("open", "high", "low", "close", "volume", "vwap"):
        assert stored[column].tolist() == frame[column].tolist(), column
    assert stored["trade_count"].tolist() == frame["trade_count"].tolist()


def test_identical_reimport_changes_nothing(engine: Engine) -> None:
    frame = spy_frame()
    upsert(engine, frame)
    upsert(engine, spx_records())
    before = table_checksum(engine)
    again = upsert(engine, frame)
    again_spx = upsert(engine, spx_records())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 50)
    assert (again_spx.inserted, again_spx.updated, again_spx.unchanged) == (0, 0, 5)
    assert table_checksum(engine) == before


def test_corrected_bar_replaces_the_old_one_and_moves_updated_at(engine: Engine) -> None:
    frame = spy_frame(n=10)
    upsert(engine, frame)
    with engine.connect() as conn:
        ingested, updated = conn.execute(text(
            "SELECT ingested_at, updated_at FROM bars WHERE start = :s"), {"s": OPEN_ET_UTC}).one()
    corrected = frame.copy()
    corrected.loc[0, ["close", "high", "volume"]] = [605.0, 605.5, 99_999.0]
    result = upsert(engine, corrected)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 9)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT close, high, volume, ingested_at, updated_at FROM bars"
                                " WHERE start = :s"), {"s": OPEN_ET_UTC}).one()
        untouched = conn.execute(text("SELECT count(*) FROM bars WHERE updated_at = ingested_at")).scalar_one()
    assert (row.close, row.high, row.volume) == (605.0, 605.5, 99_999.0)
    assert row.ingested_at == ingested
    assert row.updated_at > updated
    assert untouched == 9


def test_missing_volume_is_stored_as_null_never_zero_or_nan(engine: Engine) -> None:
    records = spx_records(n=4)
    records[3]["volume"] = float("nan")
    upsert(engine, records)
    upsert(engine, [tuple(r.values()) for r in spx_records(n=6)[4:]], columns=list(records[0]))
    with engine.connect() as conn:
        volumes = conn.execute(text("SELECT volume FROM bars")).scalars().all()
    assert volumes == [None] * 6


def test_dataframe_nan_volume_of_index_bars_is_null(engine: Engine) -> None:
    frame = spy_frame(n=3).assign(symbol="SPX", volume=np.nan, vwap=np.nan, trade_count=np.nan)
    upsert(engine, frame)
    with engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM bars WHERE volume IS NULL AND vwap IS NULL"
                                  " AND trade_count IS NULL")).scalar_one()
    assert nulls == 3


def test_duplicate_keys_in_one_batch_are_rejected_and_nothing_is_written(engine: Engine) -> None:
    frame = spy_frame(n=5)
    batch = pd.concat([frame, frame.iloc[[2]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"repeats key.*symbol, start.*'SPY'.*13:32:00"):
        upsert(engine, batch)
    assert table_checksum(engine)[0] == 0


def test_duplicate_of_an_already_stored_bar_is_rejected_too(engine: Engine) -> None:
    frame = spy_frame(n=5)
    upsert(engine, frame)
    before = table_checksum(engine)
    changed = frame.iloc[[2]].assign(close=frame.loc[2, "close"] + 0.01)
    with pytest.raises(DuplicateKeyError):
        upsert(engine, pd.concat([frame, changed], ignore_index=True))
    assert table_checksum(engine) == before


def test_failure_mid_transaction_leaves_nothing_half_written(engine: Engine) -> None:
    good = spy_frame(n=20)
    broken = spy_frame(n=3, start=OPEN_ET_UTC + timedelta(hours=1))
    broken.loc[1, "high"] = broken.loc[1, "low"] - 1  # violates ck_bars_high_not_below_low
    with pytest.raises(IntegrityError, match="ck_bars_high_not_below_low"), engine.begin() as conn:
        assert bulk_upsert(conn, bars, good).inserted == 20
        bulk_upsert(conn, bars, broken)
    assert table_checksum(engine)[0] == 0


def test_two_batches_in_one_transaction_commit_together(engine: Engine) -> None:
    with engine.begin() as conn:
        first = bulk_upsert(conn, bars, spy_frame(n=10))
        second = bulk_upsert(conn, bars, spx_records())
    assert (first.inserted, second.inserted) == (10, 5)
    assert table_checksum(engine)[0] == 15


def test_tuples_need_column_names(engine: Engine) -> None:
    records = spx_records(n=2)
    names = list(records[0])
    with pytest.raises(ValueError, match="columns= is required"):
        upsert(engine, [tuple(r.values()) for r in records])
    result = upsert(engine, [tuple(r.values()) for r in records], columns=names)
    assert result.inserted == 2


def test_unknown_column_and_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"no column\(s\) \['colour'\]"):
        upsert(engine, spy_frame(n=2).assign(colour="red"))
    naive = spy_frame(n=2)
    naive["start"] = naive["start"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="column start holds naive datetimes"):
        upsert(engine, naive)


def test_timestamps_in_other_zones_are_stored_as_the_same_instant(engine: Engine) -> None:
    frame = spy_frame(n=2)
    frame["start"] = frame["start"].dt.tz_convert("America/New_York")
    upsert(engine, frame)
    with engine.connect() as conn:
        first = conn.execute(select(bars.c.start).order_by(bars.c.start)).scalars().first()
    assert first == OPEN_ET_UTC


def test_returning_marks_the_inserted_and_changed_rows_in_batch_order(engine: Engine) -> None:
    frame = spy_frame(n=6)
    upsert(engine, frame.iloc[:4])
    batch = frame.iloc[::-1].reset_index(drop=True)  # 2 new rows first, then 4 stored ones
    batch.loc[3, "close"] = batch.loc[3, "high"]  # one stored bar corrected
    result = upsert(engine, batch, returning=True)
    assert (result.inserted, result.updated, result.unchanged) == (2, 1, 3)
    assert result.changed.tolist() == [True, True, False, True, False, False]
    records = spx_records(3)
    assert upsert(engine, records, returning=True).changed.tolist() == [True, True, True]
    assert upsert(engine, records, returning=True).changed.tolist() == [False, False, False]


def test_duplicate_keys_in_records_are_rejected_too(engine: Engine) -> None:
    records = spx_records(3)
    with pytest.raises(DuplicateKeyError, match=r"'SPX'"):
        upsert(engine, [*records, {**records[1], "close": 6201.2}], returning=True)
    assert table_checksum(engine)[0] == 0
