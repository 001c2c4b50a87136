"""`scalper ingest file` and `scalper data report` on the real SPY July 2025 file, against a fresh database."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import redis
from sqlalchemy import text
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, streams

pytestmark = pytest.mark.integration

SPY_JULY = "SPY_1m_2025-07.csv.gz"
CHECKSUM = text("SELECT count(*), md5(string_agg(concat_ws(',', symbol, start, open, high, low, close, volume,"
                " vwap, trade_count, session, source, updated_at), '|' ORDER BY symbol, start)) FROM bars")


def _env(database_url: str, redis_url: str, stream_prefix: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
            "POLYGON_API_KEY": ""}


def _invoke(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, f"{args} failed: {result.output}\n{result.exception!r}"
    return result.output


def _state(database_url: str) -> tuple[int, str, int, dict[str, int]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            count, checksum = connection.execute(CHECKSUM).one()
            quarantined = connection.execute(text("SELECT count(*) FROM bars_quarantine")).scalar_one()
            reasons = dict(connection.execute(
                text("SELECT reason, count(*) FROM bars_quarantine GROUP BY reason")).all())
    finally:
        engine.dispose()
    return count, checksum, quarantined, reasons


def test_file_import_stores_every_row_or_quarantines_it_and_a_reimport_changes_nothing(
        shared_data: Path, database_url: str, redis_url: str, redis_client: redis.Redis,
        stream_prefix: str) -> None:
    path = shared_data / SPY_JULY
    file_rows = len(pd.read_csv(path))
    env = _env(database_url, redis_url, stream_prefix)
    stream = stream_prefix + streams.MD_BARS

    output = _invoke(["ingest", "file", str(path), "--symbol", "SPY"], env)
    stored, checksum, quarantined, reasons = _state(database_url)
    assert (stored, quarantined, file_rows) == (19_924, 29, 19_953)
    assert stored + quarantined == file_rows
    assert reasons == {"off_calendar": 21, "price_spike": 8}  # 8 extended-hours bad prints (471.48 at 629)
    assert "19924 inserted" in output and "29 quarantined (off_calendar 21, price_spike 8)" in output
    assert redis_client.xlen(stream) == 19_924
    starts = [int(json.loads(fields[b"envelope"])["id"].split(":")[2]) for _, fields in redis_client.xrange(stream)]
    assert starts == sorted(set(starts))  # every bar once, in time order across the committed slices

    output = _invoke(["ingest", "file", str(path), "--symbol", "SPY"], env)
    assert _state(database_url) == (stored, checksum, quarantined, reasons)
    assert "0 inserted, 0 updated, 19924 unchanged" in output and "0 published" in output
    assert redis_client.xlen(stream) == 19_924

    first, last = (CODEC.decode(entry[1][b"envelope"]) for entry in
                   (redis_client.xrange(stream, count=1)[0], redis_client.xrevrange(stream, count=1)[0]))
    assert first.payload.start < last.payload.start
    assert first.payload.session == "pre" and first.payload.source == "file"


def test_data_report_shows_the_early_close_as_complete_not_as_missing_minutes(
        shared_data: Path, database_url: str, redis_url: str, stream_prefix: str) -> None:
    env = _env(database_url, redis_url, stream_prefix)
    _invoke(["ingest", "file", str(shared_data / SPY_JULY), "--symbol", "SPY"], env)

    output = _invoke(["data", "report", "--symbol", "SPY", "--from", "2025-07-02", "--to", "2025-07-07"], env)
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[1:-1]]
            for line in output.splitlines() if line.count("│") > 6 and "2025-07" in line}
    assert sorted(rows) == ["2025-07-02", "2025-07-03", "2025-07-07"]  # the holiday expects nothing
    day, hours, expected, present, missing, extended, runs = rows["2025-07-03"]
    assert "09:30-13:00 early close" in hours
    assert (expected, missing) == ("210", "0") and present == "210"
    assert rows["2025-07-02"][2] == "390"
    assert "3 trading days, 990 regular minutes expected" in output
