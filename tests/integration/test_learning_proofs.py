"""The learning proofs of issue #13: real training runs through ``scalper train --local`` and real
evaluations through ``scalper eval --local``, each asserting the issue's criterion.

- *Edge found*: the default preset, trained on synthetic ``momentum``-edge days of one market seed,
  evaluated on the edge days of another seed, makes money: mean daily P&L above zero, the bootstrap
  95% interval of its daily difference to HOLD above zero, and more than the momentum rule and the
  random baseline. How close it comes to ``edge_rule`` is reported, not asserted.
- *No edge, no churn*: the same on ``none`` days (other seeds): at most 25% of the random baseline's
  trades per day and at most 25% of its mean daily loss.
- *The seed run reproduced*: the ``seed`` preset on the real bars of ``../shared/data`` (imported with
  ``scalper ingest file``) to 500k steps: the setup-BUY rate rises over the checkpoints to at least
  0.80, with the non-setup BUY rate at least 0.20 below it.

The market seeds of the synthetic proofs were never used while the learner was developed (seeds 1
and 2 were, then 7 and 8 as a second check; ``docs/rewards.md``, "Learning proofs"). The edge and
no-churn proofs pass since the default preset anneals its learning rate; the edge proof is
fragile (it fails on the development pair 7 -> 8), so a change to the learner that turns it red
is a regression to investigate, not a flake. The seed proof passes since the ``seed`` preset trains
on a 10-minute horizon (gamma 0.9) at a constant 2e-4; it is fragile too: its training seed 0 passes
the 0.80 bar by 0.01 and other training seeds land on either side of it (``docs/diagnostics.md``).
Each test prints its figures (``make proofs`` shows them). Marked ``proof``: deselected from ``make test`` by the pytest addopts; ``make proofs``
(``pytest -m proof``) runs them, and CI runs it after the suite. Runtime: README, "Tests".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.eval_support import invoke

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.proof,
              pytest.mark.timeout(3600)]   # a training run takes minutes to tens of minutes

TRAIN_WINDOW = ["--from", "2025-01-02", "--to", "2025-09-30", "--validation-from", "2025-10-01",
                "--validation-to", "2025-10-31"]
EVAL_WINDOW = ["--from", "2025-01-02", "--to", "2025-12-31"]
EDGE_SEEDS = (3, 4)          # (train, evaluate): never used during development
NO_EDGE_SEEDS = (5, 6)
SYNTHETIC_STEPS = 500_000
SEED_RUN_STEPS = 500_000
REAL_FILES = (("SPY_1m_2025-07.csv.gz", "SPY"), ("SPY_1m_2025-08_2025-10.csv.gz", "SPY"),
              ("QQQ_1m_2025-08_2025-10.csv.gz", "QQQ"))
MILESTONES = (5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000)


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "TRAINER_TORCH_THREADS": "1",
            "POLYGON_API_KEY": ""}


def train_and_evaluate(env: dict[str, str], tmp_path: Path, edge: str, seeds: tuple[int, int]) -> dict[str, Any]:
    """``scalper train --local`` (default preset) on market seed ``seeds[0]``, then ``scalper eval --local``
    on every 2025 session of market seed ``seeds[1]``; the evaluation's ``metrics.json``."""
    train_seed, eval_seed = seeds
    out = tmp_path / "training"
    invoke(["train", "--local", "--source", "synthetic", "--synthetic-seed", str(train_seed), "--synthetic-edge", edge,
            *TRAIN_WINDOW, "--timesteps", str(SYNTHETIC_STEPS), "--out", str(out)], env)
    model_id = (out / "model_id").read_text().strip()
    report = tmp_path / "evaluation"
    invoke(["eval", "--local", "--model", model_id, *EVAL_WINDOW, "--source", "synthetic", "--synthetic-seed",
            str(eval_seed), "--synthetic-edge", edge, "--no-checkpoints", "--out", str(report)], env)
    return json.loads((report / "metrics.json").read_text())


def daily(metrics: dict[str, Any], name: str) -> tuple[float, float]:
    """(mean daily P&L, trades per day) of the agent or a baseline."""
    row = metrics if name == "agent" else metrics["baselines"][name]
    return row["performance"]["mean_daily_pnl"], row["trades_per_day"]["mean_per_day"]


def figures(metrics: dict[str, Any]) -> str:
    lines = []
    for name in ("agent", *metrics["baselines"]):
        pnl, trades = daily(metrics, name)
        line = f"{name:>14}: {pnl:>9.1f} $/day {trades:>6.2f} trades/day"
        if name != "agent":
            vs = metrics["significance"]["vs"][name]
            line += (f"  agent - {name}: {vs['mean_daily_difference']:.1f} "
                     f"[{vs['ci_low']:.1f}, {vs['ci_high']:.1f}]")
        lines.append(line)
    return "\n".join(lines)


def test_edge_found(migrated_database_url: str, tmp_path: Path) -> None:
    metrics = train_and_evaluate(cli_env(migrated_database_url, tmp_path), tmp_path, "momentum", EDGE_SEEDS)
    print(f"\nedge found (train seed {EDGE_SEEDS[0]}, evaluate seed {EDGE_SEEDS[1]}):\n{figures(metrics)}")
    agent, _ = daily(metrics, "agent")
    edge_rule, _ = daily(metrics, "edge_rule")
    print(f"agent / edge_rule: {agent / edge_rule:.0%}")
    vs_hold = metrics["significance"]["vs"]["hold"]
    assert agent > 0
    assert vs_hold["ci_low"] > 0, vs_hold
    assert agent > daily(metrics, "momentum_rule")[0]
    assert agent > daily(metrics, "random")[0]


def test_no_edge_no_churn(migrated_database_url: str, tmp_path: Path) -> None:
    metrics = train_and_evaluate(cli_env(migrated_database_url, tmp_path), tmp_path, "none", NO_EDGE_SEEDS)
    print(f"\nno edge (train seed {NO_EDGE_SEEDS[0]}, evaluate seed {NO_EDGE_SEEDS[1]}):\n{figures(metrics)}")
    agent_pnl, agent_trades = daily(metrics, "agent")
    random_pnl, random_trades = daily(metrics, "random")
    assert random_pnl < 0 < random_trades
    assert agent_trades <= 0.25 * random_trades
    assert -agent_pnl <= 0.25 * -random_pnl


def test_seed_run_reproduced(shared_data: Path, migrated_database_url: str, tmp_path: Path) -> None:
    env = cli_env(migrated_database_url, tmp_path)
    for name, symbol in REAL_FILES:
        invoke(["ingest", "file", str(shared_data / name), "--symbol", symbol], env)
    out = tmp_path / "training"
    invoke(["train", "--local", "--preset", "seed", "--from", "2025-07-01", "--to", "2025-09-30",
            "--validation-from", "2025-10-01", "--validation-to", "2025-10-31", "--timesteps", str(SEED_RUN_STEPS),
            "--out", str(out)], env)
    rows = json.loads((out / "diagnostics.json").read_text())
    at = {milestone: next(r for r in rows if r["step"] >= milestone) for milestone in MILESTONES}
    print("\nseed run reproduced (seed preset, real bars, validation October 2025):")
    for milestone, r in at.items():
        print(f"{milestone:>8,} (step {r['step']:,}): P(HOLD) {r['hold_share']:.3f} P(BUY) {r['buy_share']:.3f} "
              f"setup-BUY {r['setup_buy_rate']:.3f} non-setup BUY {r['nonsetup_buy_rate']:.3f} "
              f"criteria {r['seed_criteria']} P&L/account-day {r['pnl_per_account_day']:.0f} "
              f"trades/account-day {r['trades_per_account_day']:.1f}")
    report = tmp_path / "evaluation"
    invoke(["eval", "--local", "--model", (out / "model_id").read_text().strip(), "--from", "2025-10-01",
            "--to", "2025-10-31", "--no-checkpoints", "--out", str(report)], env)
    print(figures(json.loads((report / "metrics.json").read_text())))
    first, final = at[MILESTONES[0]], rows[-1]
    assert final["step"] >= SEED_RUN_STEPS
    assert final["setup_buy_rate"] > first["setup_buy_rate"]
    assert final["setup_buy_rate"] >= 0.80
    assert final["nonsetup_buy_rate"] <= final["setup_buy_rate"] - 0.20
