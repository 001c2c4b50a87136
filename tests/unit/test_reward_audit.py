"""The reward audit on the synthetic market, without and with the planted edge: the default preset
ranks the reference policies exactly as their after-cost P&L does; the seed preset does not."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_shared.core.rewards import REWARD_TERMS
from scalper_shared.schema.presets import get_preset
from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.evaluation.audit import RewardAudit, audit_reward

WINDOW = (date(2024, 3, 1), date(2024, 3, 29))
POLICIES = {"hold", "random", "momentum_rule", "setup_exit_5m", "setup_exit_15m", "no_setup", "edge_rule"}


@pytest.fixture(scope="module", params=["none", "momentum"])
def market(request: pytest.FixtureRequest) -> tuple[str, MarketTape]:
    episodes = synthetic_episodes(*WINDOW, seed=1, symbols=("SPY", "QQQ"), edge=request.param)
    return request.param, MarketTape(episodes, EnvConfig())


def audit(market: tuple[str, MarketTape], preset: str) -> RewardAudit:
    return audit_reward(market[1], get_preset(preset).reward, preset=preset)


def test_default_preset_ranks_policies_exactly_like_after_cost_money(market: tuple[str, MarketTape]) -> None:
    result = audit(market, "default")
    assert set(result.policies) == POLICIES and result.symbol_days == 40
    assert result.spearman == pytest.approx(1.0)
    assert result.misranked_pairs() == []
    for row in result.policies.values():           # the reward of a symbol-day is its dollars / 1,000
        assert row.reward_per_symbol_day == pytest.approx(row.pnl_per_symbol_day / 1000.0, abs=1e-9)
    pnl = {name: row.pnl_per_symbol_day for name, row in result.policies.items()}
    assert len(set(pnl.values())) == len(pnl)         # distinct outcomes: the ranking is a real test
    if market[0] == "momentum":
        assert pnl["edge_rule"] > 0 == pnl["hold"]


def test_seed_preset_pays_losing_policies_more_than_holding(market: tuple[str, MarketTape]) -> None:
    result = audit(market, "seed")
    assert result.spearman is not None and result.spearman < 0.5
    misranked = result.misranked_pairs()
    assert ("setup_exit_5m", "hold") in misranked          # loses money, out-earns HOLD's 0 in reward
    losing = result.policies["setup_exit_5m"]
    assert losing.pnl_per_symbol_day < 0 < losing.terms["good_buy"]
    assert result.policies["hold"].terms["missed_opportunity"] < 0


def test_cli_audit_writes_the_documented_json(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(app, ["reward", "audit", "--source", "synthetic", "--from", "2024-03-04", "--to",
                                      "2024-03-08", "--symbols", "SPY", "--synthetic-edge", "momentum",
                                      "--synthetic-seed", "2", "--preset", "seed", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["preset"] == "seed" and document["symbol_days"] == 5
    assert set(document["policies"]) == POLICIES
    assert document["window"]["synthetic_edge"] == "momentum" and document["window"]["synthetic_seed"] == 2
    for row in document["policies"].values():
        assert set(row) >= {"pnl_per_symbol_day", "reward_per_symbol_day", "terms"}
        assert set(row["terms"]) == set(REWARD_TERMS)
        total = sum(term["per_symbol_day"] for term in row["terms"].values())
        assert total == pytest.approx(row["reward_per_symbol_day"])
    assert isinstance(document["spearman"], float)
    assert "Spearman" in result.output


def test_cli_audit_refuses_bad_options() -> None:
    runner = CliRunner()
    bad_edge = runner.invoke(app, ["reward", "audit", "--source", "synthetic", "--from", "2024-03-04", "--to",
                                   "2024-03-08", "--synthetic-edge", "lucky"])
    assert bad_edge.exit_code == 2 and "none, momentum" in bad_edge.output
    bad_preset = runner.invoke(app, ["reward", "audit", "--source", "synthetic", "--from", "2024-03-04", "--to",
                                     "2024-03-08", "--preset", "nope"])
    assert bad_preset.exit_code == 2 and "unknown preset" in bad_preset.output
    edge_on_database = runner.invoke(app, ["reward", "audit", "--from", "2024-03-04", "--to", "2024-03-08",
                                           "--synthetic-edge", "momentum"])
    assert edge_on_database.exit_code == 2 and "need --source synthetic" in edge_on_database.output
