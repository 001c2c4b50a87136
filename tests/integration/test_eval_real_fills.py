"""``scalper eval --fills real`` on real SPY bars with option bars stored for the agent's contracts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from scalper_shared.core.occ import parse_polygon_option
from scalper_shared.db import bulk_upsert, make_engine
from scalper_shared.db.models import option_bars
from scalper_trainer.env.core import ENTRY
from scalper_trainer.evaluation.run import run_evaluation
from tests.integration.eval_support import ingest_spy_july, invoke, register_fresh_model

pytestmark = pytest.mark.integration

FIRST, LAST = date(2025, 7, 8), date(2025, 7, 9)
REAL_CLOSE = 3.21


def store_entry_bars(database_url: str, tape_fills: list[tuple[str, pd.Timestamp]]) -> int:
    rows = []
    for ticker, start in tape_fills:
        parts = parse_polygon_option(ticker)
        rows.append({"ticker": ticker, "start": start, "underlying": "SPY", "expiry": parts.expiry,
                     "option_right": parts.right.value, "strike": parts.strike, "open": REAL_CLOSE,
                     "high": REAL_CLOSE, "low": REAL_CLOSE, "close": REAL_CLOSE, "volume": 10.0, "vwap": REAL_CLOSE,
                     "trade_count": 3, "source": "test"})
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            return bulk_upsert(connection, option_bars, pd.DataFrame(rows).drop_duplicates(["ticker", "start"])).inserted
    finally:
        engine.dispose()


def test_eval_with_real_fills_uses_the_stored_option_bars(
        shared_data: Path, migrated_database_url: str, redis_url: str, stream_prefix: str, tmp_path: Path) -> None:
    from scalper_trainer.evaluation.real_fills import _bar_start, reprice_fills

    artifacts = tmp_path / "artifacts"
    env = {"DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url, "STREAM_PREFIX": stream_prefix,
           "ARTIFACTS_DIR": str(artifacts)}
    ingest_spy_july(shared_data, env)
    model_id = register_fresh_model(migrated_database_url, artifacts)
    modelled = run_evaluation(model_id, FIRST, LAST, artifacts_dir=artifacts, out_dir=tmp_path / "model",
                              database_url=migrated_database_url, symbols=["SPY"], checkpoints=False)
    # the agent's entry contracts and minutes, found by a pass that records them
    seen: dict[tuple[str, pd.Timestamp], float] = {}

    class Recorder(dict):
        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            seen[key] = 0.0
            return default

    from scalper_trainer.env import MarketTape
    from scalper_trainer.env.episodes import load_episodes
    from scalper_trainer.evaluation.run import load_artifact

    artifact = load_artifact(model_id, artifacts)
    config = artifact.env_config()
    tape = MarketTape(load_episodes(migrated_database_url, ["SPY"], FIRST, LAST), config)
    reprice_fills(modelled.agent, tape, config, Recorder())
    entries = [f for f in modelled.agent.fills if f.reason == ENTRY]
    assert entries, "the fresh model made no trade on these days"
    entry_keys = [key for key in seen if any(_bar_start(tape, f) == key[1] for f in entries)]
    assert store_entry_bars(migrated_database_url, entry_keys) == len(set(entry_keys))

    out = tmp_path / "real"
    output = invoke(["eval", "--model", model_id, "--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--local",
                     "--symbols", "SPY", "--no-checkpoints", "--fills", "real", "--out", str(out)], env)
    assert "from real option bars" in output
    metrics = json.loads((out / "metrics.json").read_text())
    agent_fills = metrics["fills"]["agent"]
    assert metrics["fills"]["mode"] == "real" and metrics["fills"]["option_bars"] == len(set(entry_keys))
    assert agent_fills["real"] == len(entries) and agent_fills["fills"] == len(modelled.agent.fills)
    assert metrics["performance"]["total_pnl"] != modelled.metrics["performance"]["total_pnl"]
