"""``--synthetic-edge`` / ``--synthetic-seed`` reach the synthetic market from every entry point, and a
planted edge is refused where there is no synthetic market."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from scalper_cli.commands.eval import request_body
from scalper_cli.main import app
from scalper_ingestion.backfill import SourceKind, make_history_source
from scalper_ingestion.settings import IngestionSettings
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.schema.evaluation import EvaluationRequest
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env.bundle import episodes_for
from scalper_trainer.evaluation.run import ModelArtifact, run_evaluation, window_episodes

WINDOW = {"train_from": date(2025, 7, 7), "train_to": date(2025, 7, 8),
          "validation_from": date(2025, 7, 9), "validation_to": date(2025, 7, 10)}


def test_train_config_and_evaluation_request_take_an_edge_only_on_the_synthetic_market() -> None:
    config = TrainConfig(**WINDOW, data_source="synthetic", data_seed=3, data_edge="momentum")
    assert config.data_edge == "momentum"
    with pytest.raises(ValidationError, match="only with data_source 'synthetic'"):
        TrainConfig(**WINDOW, data_edge="momentum")
    with pytest.raises(ValidationError):
        TrainConfig(**WINDOW, data_source="synthetic", data_edge="lucky")
    request = EvaluationRequest(model_id="m", start=date(2025, 7, 9), end=date(2025, 7, 10), data_source="synthetic",
                                data_edge="momentum", data_seed=4)
    assert (request.data_edge, request.data_seed) == ("momentum", 4)
    with pytest.raises(ValidationError, match="only with data_source 'synthetic'"):
        EvaluationRequest(model_id="m", start=date(2025, 7, 9), end=date(2025, 7, 10), data_edge="momentum")


def test_training_and_evaluation_episodes_carry_the_edge() -> None:
    config = TrainConfig(**WINDOW, symbols=("SPY",), data_source="synthetic", data_seed=0, data_edge="momentum")
    edged = episodes_for(config, None, date(2025, 7, 1), date(2025, 7, 31))  # type: ignore[arg-type]
    plain = window_episodes(date(2025, 7, 1), date(2025, 7, 31), ["SPY"], data_source="synthetic", data_seed=0)
    again = window_episodes(date(2025, 7, 1), date(2025, 7, 31), ["SPY"], data_source="synthetic", data_seed=0,
                            data_edge="momentum")
    assert edged.n_episodes == plain.n_episodes
    assert (edged.close == again.close).all() and not (edged.close == plain.close).all()


def test_backfill_source_takes_the_cli_seed_and_edge_over_the_settings() -> None:
    settings = IngestionSettings(_env_file=None)  # type: ignore[call-arg]
    source = make_history_source(SourceKind.SYNTHETIC, settings, ["SPY"], date(2025, 7, 7), date(2025, 7, 8),
                                 synthetic_seed=5, synthetic_edge="momentum")
    assert (source.seed, source.edge) == (5, "momentum")  # type: ignore[attr-defined]
    default = make_history_source(SourceKind.SYNTHETIC, settings, ["SPY"], date(2025, 7, 7), date(2025, 7, 8))
    assert (default.seed, default.edge) == (0, "none")  # type: ignore[attr-defined]


def test_eval_and_ingest_commands_pass_or_refuse_the_synthetic_options() -> None:
    body = request_body("m", date(2025, 7, 9), date(2025, 7, 10), None, 0, "synthetic", True, None, 7, "momentum")
    assert (body["data_seed"], body["data_edge"]) == (7, "momentum")
    assert "data_edge" not in request_body("m", date(2025, 7, 9), date(2025, 7, 10), None, 0, "database", True)
    runner = CliRunner()
    refused = runner.invoke(app, ["eval", "--model", "m", "--from", "2025-07-09", "--to", "2025-07-10", "--local",
                                  "--synthetic-edge", "momentum"])
    assert refused.exit_code == 2 and "need --source synthetic" in refused.output
    bad = runner.invoke(app, ["ingest", "backfill", "--symbols", "SPY", "--from", "2025-07-09", "--to", "2025-07-10",
                              "--source", "synthetic", "--synthetic-edge", "lucky"])
    assert bad.exit_code == 2 and "none, momentum" in bad.output


def test_train_command_refuses_an_edge_without_the_synthetic_market() -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["train", "--local", "--synthetic-edge", "momentum"])
    assert refused.exit_code == 2 and "need --source synthetic" in refused.output
    bad = runner.invoke(app, ["train", "--local", "--source", "synthetic", "--synthetic-edge", "lucky"])
    assert bad.exit_code == 2 and "none, momentum" in bad.output


def test_an_evaluation_on_an_edge_market_has_the_edge_rule_baseline_with_its_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    network = NumpyPolicy(hidden=((rng.normal(0, 0.05, (460, 16)), np.zeros(16)),),
                          head=(rng.normal(0, 1.0, (16, 6)), np.zeros(6)))
    artifact = ModelArtifact("model-test", tmp_path, network, {})
    outcome = run_evaluation(artifact, date(2025, 7, 1), date(2025, 7, 31), artifacts_dir=tmp_path,
                             out_dir=tmp_path / "report", symbols=("SPY", "QQQ"), data_source="synthetic",
                             data_seed=0, data_edge="momentum", checkpoints=False)
    metrics = outcome.metrics
    assert set(metrics["baselines"]) == {"hold", "random", "momentum_rule", "edge_rule"}
    assert metrics["window"]["edge"] == "momentum" and metrics["window"]["data_seed"] == 0
    interval = metrics["significance"]["vs"]["edge_rule"]
    assert interval["ci_low"] <= interval["mean_daily_difference"] <= interval["ci_high"]
    assert metrics["baselines"]["edge_rule"]["performance"]["total_pnl"] > 0     # the edge pays after costs
