"""File source on the real SPY July 2025 file (../shared/data) and on small files it writes itself."""

from __future__ import annotations

import pandas as pd
import pytest

from scalper_ingestion.quality import OFF_CALENDAR, PRICE_SPIKE, reason_counts, validate
from scalper_ingestion.sources.base import BAR_COLUMNS, BarSource
from scalper_ingestion.sources.files import PolygonFileSource
from tests.conftest import SHARED_DATA

SPY_JULY_ROWS = 19_953


@pytest.fixture(scope="module")
def spy_july() -> tuple[pd.DataFrame, pd.DataFrame, int]:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real bars expected at {SHARED_DATA} (../shared/data beside the repo)")
    source = PolygonFileSource(SHARED_DATA / "SPY_1m_2025-07.csv.gz", "SPY", chunk_rows=5_000)
    batches = list(source.batches())
    results = [validate(batch) for batch in batches]
    clean = pd.concat([r[0] for r in results], ignore_index=True)
    quarantined = pd.concat([r[1] for r in results], ignore_index=True)
    return clean, quarantined, len(batches)


def test_every_row_of_the_file_is_accounted_for_in_chunks(spy_july):
    clean, quarantined, batch_count = spy_july
    assert batch_count == 4  # 19,953 rows in chunks of 5,000
    assert len(clean) + len(quarantined) == SPY_JULY_ROWS
    assert list(clean.columns) == list(BAR_COLUMNS)
    assert set(clean["symbol"]) == {"SPY"} and set(clean["source"]) == {"file"}
    assert clean["trade_count"].isna().all() and clean["vwap"].isna().all()  # not in the file


def test_bars_outside_extended_hours_are_quarantined_not_dropped(spy_july):
    _, quarantined, _ = spy_july
    assert reason_counts(quarantined) == {OFF_CALENDAR: 21, PRICE_SPIKE: 8}
    spikes = quarantined[quarantined["reason"] == PRICE_SPIKE]  # extended-hours bad prints, e.g. 471.48 at 629
    assert set(spikes["session"]) <= {"pre", "post"}
    quarantined = quarantined[quarantined["reason"] == OFF_CALENDAR]
    local = quarantined["start"].dt.tz_convert("America/New_York")
    outside = (local.dt.hour < 4) | (local.dt.hour >= 20) | (local.dt.day_of_week >= 5)
    early_close_post = (local.dt.date == pd.Timestamp("2025-07-03").date()) & (local.dt.hour >= 17)
    assert (outside | early_close_post).all()


def test_sessions_follow_the_calendar_including_the_july_3_early_close(spy_july):
    clean, _, _ = spy_july
    assert set(clean["session"]) == {"pre", "regular", "post"}
    july_3 = clean[clean["start"].dt.tz_convert("America/New_York").dt.date == pd.Timestamp("2025-07-03").date()]
    regular = july_3[july_3["session"] == "regular"]["start"]
    assert regular.min() == pd.Timestamp("2025-07-03 13:30", tz="UTC")
    assert regular.max() == pd.Timestamp("2025-07-03 16:59", tz="UTC")  # regular bars end 17:00 UTC
    assert (july_3[july_3["start"] >= pd.Timestamp("2025-07-03 17:00", tz="UTC")]["session"] == "post").all()
    july_1 = clean[clean["start"].dt.tz_convert("America/New_York").dt.date == pd.Timestamp("2025-07-01").date()]
    assert july_1[july_1["session"] == "regular"]["start"].max() == pd.Timestamp("2025-07-01 19:59", tz="UTC")
    assert july_1[july_1["session"] == "pre"]["start"].min() == pd.Timestamp("2025-07-01 08:00", tz="UTC")
    assert not (clean["start"].dt.tz_convert("America/New_York").dt.date == pd.Timestamp("2025-07-04").date()).any()


def _polygon_rows() -> pd.DataFrame:
    starts = pd.date_range("2025-07-05 14:00", periods=2, freq="min", tz="UTC").append(  # a Saturday
        pd.date_range("2025-07-07 13:30", periods=3, freq="min", tz="UTC"))
    return pd.DataFrame({"t": starts.as_unit("ms").asi8, "o": 500.0, "h": 501.0, "l": 499.0, "c": 500.5,
                         "v": 100.0, "vw": 500.2, "n": 7})


@pytest.mark.parametrize("name", ["bars.csv", "bars.csv.gz", "bars.parquet"])
def test_csv_gzip_and_parquet_files_read_alike(tmp_path, name):
    path = tmp_path / name
    rows = _polygon_rows()
    if name.endswith(".parquet"):
        rows.to_parquet(path, index=False)
    else:
        rows.to_csv(path, index=False)
    source = PolygonFileSource(path, "QQQ", chunk_rows=2, source="file:test")
    assert isinstance(source, BarSource)
    batches = list(source.batches())
    assert [len(b) for b in batches] == [2, 2, 1]
    frame = pd.concat(batches, ignore_index=True)
    assert frame["session"].tolist() == [None, None, "regular", "regular", "regular"]
    assert frame["trade_count"].tolist() == [7] * 5 and frame["vwap"].tolist() == [500.2] * 5
    clean, quarantined = validate(frame)
    assert len(clean) == 3 and reason_counts(quarantined) == {OFF_CALENDAR: 2}


def test_a_file_without_polygon_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "wrong.csv"
    pd.DataFrame({"time": [1], "price": [2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"wrong.csv.*missing columns \['t', 'o', 'h', 'l', 'c'\]"):
        list(PolygonFileSource(path, "SPY").batches())
