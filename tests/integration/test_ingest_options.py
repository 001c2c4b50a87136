"""`scalper ingest options` against the fake Polygon server: contracts around the money, stored once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_ingestion.options import contracts_near_money
from scalper_shared.db import make_engine
from tests.fakes.polygon_rest import FakePolygonRest, minute_bars, option_contract

pytestmark = pytest.mark.integration

DAY = date(2025, 7, 1)
KEY = "test-key"
STRIKES = [float(s) for s in range(490, 511)]  # $1 grid; SPY trades 500.00-501.24 in the fake day


def fake_market() -> FakePolygonRest:
    spy = minute_bars(DAY, 390, price=500.0)            # regular session only: low 499.95, high 503.91
    fake = FakePolygonRest({"SPY": spy}, api_key=KEY)
    for strike in STRIKES:
        for right in ("call", "put"):
            contract = option_contract("SPY", DAY, right, strike)
            fake.contracts.append(contract)
            fake.bars[contract["ticker"]] = minute_bars(DAY, 30, price=max(0.5, abs(500 - strike)) + 1.0)
    fake.contracts.append(option_contract("SPY", date(2025, 7, 2), "call", 500.0))   # not same-day
    fake.contracts.append({**option_contract("SPY", DAY, "call", 500.0), "ticker": "O:BAD"})  # unparsable
    return fake


def _env(database_url: str, redis_url: str, stream_prefix: str, fake: FakePolygonRest, cache: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
            "POLYGON_API_KEY": KEY, "POLYGON_REST_URL": fake.url, "POLYGON_CACHE_DIR": str(cache),
            "POLYGON_REQUESTS_PER_MINUTE": "100000"}


def _stored(database_url: str) -> tuple[list[tuple[str, float, str]], int, str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            contracts = [tuple(r) for r in connection.execute(text(
                "SELECT DISTINCT ticker, strike, option_right FROM option_bars ORDER BY strike, option_right"))]
            count = connection.execute(text("SELECT count(*) FROM option_bars")).scalar_one()
            stamp = str(connection.execute(text("SELECT max(updated_at) FROM option_bars")).scalar_one())
    finally:
        engine.dispose()
    return contracts, count, stamp


def test_ingest_options_stores_the_contracts_around_the_money_once(
        database_url: str, redis_url: str, stream_prefix: str, tmp_path: Path) -> None:
    with fake_market() as fake:
        env = _env(database_url, redis_url, stream_prefix, fake, tmp_path / "cache")
        args = ["ingest", "options", "--underlying", "SPY", "--from", "2025-07-01", "--to", "2025-07-01",
                "--strikes-around", "2"]
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        contracts, count, stamp = _stored(database_url)
        # the day's range 499.95..503.91: strikes 500..503 inside, two below (498, 499), two above (504, 505)
        assert sorted({strike for _, strike, _ in contracts}) == [498.0, 499.0, 500.0, 501.0, 502.0, 503.0, 504.0,
                                                                  505.0]
        assert {right for *_, right in contracts} == {"call", "put"}
        assert contracts[0][0] == "O:SPY250701C00498000"
        assert count == 16 * 30
        query = fake.contracts_requests()[0].query
        assert query["underlying_ticker"] == ["SPY"] and query["expiration_date"] == ["2025-07-01"]
        assert query["as_of"] == ["2025-07-01"]
        first_requests = len(fake.requests)

        again = CliRunner().invoke(app, args, env=env)
        assert again.exit_code == 0, again.output
        assert "0 inserted, 0 updated, 480 unchanged" in again.output
        assert _stored(database_url) == (contracts, count, stamp)
        # the day's aggregates came from the download cache: only the contracts were asked again
        assert [r.path for r in fake.requests[first_requests:]] == ["/v3/reference/options/contracts"]


def test_ingest_options_without_a_key_is_refused(database_url: str, redis_url: str, stream_prefix: str,
                                                  tmp_path: Path) -> None:
    with fake_market() as fake:
        env = {**_env(database_url, redis_url, stream_prefix, fake, tmp_path), "POLYGON_API_KEY": ""}
        result = CliRunner().invoke(app, ["ingest", "options", "--underlying", "SPY", "--from", "2025-07-01",
                                          "--to", "2025-07-01"], env=env)
        assert result.exit_code != 0 and "POLYGON_API_KEY" in result.output


def test_contracts_near_money_takes_n_listed_strikes_beyond_the_range() -> None:
    from scalper_ingestion.options import OptionContract
    from scalper_shared.schema.messages import OptionRight

    pool = [OptionContract(f"O:X{s}", "SPY", DAY, right, s) for s in (95.0, 97.5, 100.0, 101.0, 102.5, 110.0)
            for right in OptionRight]
    chosen = contracts_near_money(pool, 99.0, 101.5, 1)
    assert sorted({c.strike for c in chosen}) == [97.5, 100.0, 101.0, 102.5]
    assert len(chosen) == 8
    assert sorted({c.strike for c in contracts_near_money(pool, 99.0, 101.5, 0)}) == [100.0, 101.0]


def test_premium_check_reads_the_stored_option_bars(
        database_url: str, redis_url: str, stream_prefix: str, tmp_path: Path) -> None:
    import json

    with fake_market() as fake:
        env = _env(database_url, redis_url, stream_prefix, fake, tmp_path / "cache")
        ingested = CliRunner().invoke(app, ["ingest", "options", "--underlying", "SPY", "--from", "2025-07-01",
                                            "--to", "2025-07-01", "--strikes-around", "0"], env=env)
        assert ingested.exit_code == 0, ingested.output
        bars = CliRunner().invoke(app, ["ingest", "backfill", "--symbols", "SPY", "--from", "2025-07-01", "--to",
                                        "2025-07-01", "--source", "polygon"], env=env)
        assert bars.exit_code == 0, bars.output
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["premium", "check", "--option-bars", "SPY", "--from", "2025-07-01",
                                      "--json", str(out)], env=env)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    stored = _stored(database_url)[1]
    assert figures["n_quotes"] == stored == 8 * 30           # strikes 500..503, calls and puts, 30 minutes
    atm = figures["buckets"]["atm"]
    assert atm["n"] > 0 and atm["median_spread_real"] is None  # trade prints have no spread
    empty = CliRunner().invoke(app, ["premium", "check", "--option-bars", "QQQ", "--from", "2025-07-01"], env=env)
    assert empty.exit_code == 2 and "no stored option bars" in empty.output
