"""``scalper ingest backfill`` from the fake Polygon server: a bad key or an unentitled ticker ends in
one line that says what to do (no traceback), and trading days Polygon has no bar for are warned
about and never cached as complete."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalper_cli.main import app
from tests.fakes.polygon_rest import FakePolygonRest, minute_bars

pytestmark = pytest.mark.integration

JULY_1, JULY_2, JULY_3 = date(2025, 7, 1), date(2025, 7, 2), date(2025, 7, 3)


def backfill(env: dict[str, str], symbols: str = "SPY", start: str = "2025-07-01", end: str = "2025-07-03"):  # noqa: ANN201
    return CliRunner().invoke(app, ["ingest", "backfill", "--symbols", symbols, "--from", start, "--to", end],
                              env={**env, "COLUMNS": "400"})


@pytest.fixture
def env(migrated_database_url: str, redis_url: str, stream_prefix: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
            "POLYGON_API_KEY": "test-key", "POLYGON_CACHE_DIR": str(tmp_path / "cache"),
            "POLYGON_REQUESTS_PER_MINUTE": "600"}


def test_a_bad_key_is_one_line_saying_what_to_do(env: dict[str, str]) -> None:
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 5)}) as fake:
        result = backfill({**env, "POLYGON_REST_URL": fake.url, "POLYGON_API_KEY": "wrong"})
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if "Polygon refused SPY with HTTP 401: bad key: check POLYGON_API_KEY"
                      in line] and len(errors) == 1, result.output
    assert "Traceback" not in result.output and "PolygonAuthError" not in result.output


def test_an_unentitled_ticker_names_the_ticker_and_the_way_out(env: dict[str, str]) -> None:
    with FakePolygonRest({"I:SPX": minute_bars(JULY_1, 5)}) as fake:
        fake.forbidden.add("I:SPX")
        result = backfill({**env, "POLYGON_REST_URL": fake.url}, symbols="I:SPX", end="2025-07-01")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "HTTP 403: plan not entitled: your Polygon plan does not cover I:SPX" in result.output
    assert "drop I:SPX from --symbols" in result.output


def test_days_without_bars_are_warned_about_and_asked_for_again(env: dict[str, str]) -> None:
    cache = Path(env["POLYGON_CACHE_DIR"])
    with FakePolygonRest({"SPY": minute_bars(JULY_1, 30)}) as fake:  # nothing on July 2 and 3
        first = backfill({**env, "POLYGON_REST_URL": fake.url})
        assert first.exit_code == 0, first.output
        assert "warning: Polygon returned no bars for 2 trading symbol-day(s): SPY 2025-07-02, SPY 2025-07-03" \
            in first.output
        assert "not cached" in first.output
        assert sorted(p.name for p in (cache / "SPY").iterdir()) == ["2025-07-01.parquet"]
        requests = len(fake.aggs_requests())
        fake.bars["SPY"] = minute_bars(JULY_1, 30) + minute_bars(JULY_2, 30) + minute_bars(JULY_3, 30)
        second = backfill({**env, "POLYGON_REST_URL": fake.url})
        assert second.exit_code == 0, second.output
        asked = [r.path for r in fake.aggs_requests()[requests:]]
    assert "returned no bars" not in second.output
    assert "90 bars received: 60 inserted, 0 updated, 30 unchanged" in second.output  # July 1 from the cache
    assert len(asked) == 1  # July 1 from the cache, July 2-3 asked again in one range
    assert sorted(p.name for p in (cache / "SPY").iterdir()) == [f"2025-07-0{d}.parquet" for d in (1, 2, 3)]
