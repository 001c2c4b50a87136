"""``scalper reward audit --source database`` on the real SPY and QQQ bars of ../shared/data,
imported with ``scalper ingest file``: the default preset ranks the reference policies exactly as
their after-cost P&L does; the seed preset pays money-losing policies more than holding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.eval_support import invoke

pytestmark = pytest.mark.integration

FILES = (("SPY_1m_2025-07.csv.gz", "SPY"), ("SPY_1m_2025-08_2025-10.csv.gz", "SPY"),
         ("QQQ_1m_2025-08_2025-10.csv.gz", "QQQ"))


def test_reward_audit_on_the_real_bars(shared_data: Path, migrated_database_url: str, redis_url: str,
                                       stream_prefix: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
           "POLYGON_API_KEY": ""}
    for name, symbol in FILES:
        invoke(["ingest", "file", str(shared_data / name), "--symbol", symbol], env)
    audits = {}
    for preset in ("default", "seed"):
        out = tmp_path / f"{preset}.json"
        output = invoke(["reward", "audit", "--source", "database", "--symbols", "SPY,QQQ", "--from", "2025-07-01",
                         "--to", "2025-10-31", "--preset", preset, "--json", str(out)], env)
        assert f"preset {preset}" in output
        audits[preset] = json.loads(out.read_text())
    default, seed = audits["default"], audits["seed"]
    assert default["symbol_days"] == seed["symbol_days"] > 100
    assert default["spearman"] == pytest.approx(1.0) and default["misranked_pairs"] == []
    pnl = {name: row["pnl_per_symbol_day"] for name, row in default["policies"].items()}
    assert pnl == {name: row["pnl_per_symbol_day"] for name, row in seed["policies"].items()}
    assert max(pnl, key=pnl.__getitem__) == "hold"          # no policy makes money on these days
    assert seed["spearman"] < 0.5
    assert ["setup_exit_5m", "hold"] in seed["misranked_pairs"]
