"""Helpers of the evaluation integration tests: real bars ingested by the CLI, a registered model."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sb3_contrib import MaskablePPO
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_shared.db import make_engine
from scalper_shared.schema.training import Diagnostics, TrainConfig
from scalper_trainer.checkpoints import CheckpointStore
from scalper_trainer.diagnostics import play_validation, ppo_stats, summarise
from scalper_trainer.env import EnvConfig, MarketTape, make_vec_env, synthetic_episodes
from scalper_trainer.export import export_numpy_policy
from scalper_trainer.registry import (
    Manifest,
    model_id_for_job,
    record_diagnostics,
    register_model,
    write_artifacts,
)

SPY_JULY = "SPY_1m_2025-07.csv.gz"
JOB_ID = "train-eval-test"


def invoke(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, f"{args} failed: {result.output}\n{result.exception!r}"
    return result.output


def ingest_spy_july(shared_data: Path, env: dict[str, str]) -> None:
    """``scalper ingest file`` of the real SPY July 2025 bars into the env's database."""
    invoke(["ingest", "file", str(shared_data / SPY_JULY), "--symbol", "SPY"], {**env, "POLYGON_API_KEY": ""})


def register_fresh_model(database_url: str, artifacts_dir: Path) -> str:
    """A freshly initialised MaskablePPO (two checkpoints, one of them after a short learn, each with its
    diagnostics on two validation days), exported and registered exactly as a training job registers
    its model; returns the model id."""
    episodes = synthetic_episodes(date(2025, 6, 2), date(2025, 6, 3), seed=1, symbols=("SPY",))
    validation = MarketTape(synthetic_episodes(date(2025, 6, 4), date(2025, 6, 5), seed=2, symbols=("SPY",)),
                            EnvConfig())

    def diagnose(step: int) -> Diagnostics:
        trace, result = play_validation(export_numpy_policy(model), validation, EnvConfig(), seed=0)
        return summarise(step, trace, result, ppo_stats([], step, 2, 32, 32, 1))

    config = TrainConfig(symbols=("SPY",), train_from=date(2025, 6, 2), train_to=date(2025, 6, 3),
                         validation_from=date(2025, 6, 4), validation_to=date(2025, 6, 5), total_timesteps=64)
    model = MaskablePPO("MlpPolicy", make_vec_env(episodes, n_envs=2, seed=0), n_steps=32, batch_size=32,
                        n_epochs=1, policy_kwargs={"net_arch": [32, 32]}, seed=0, device="cpu", verbose=0)
    checkpoints = CheckpointStore(artifacts_dir / "jobs" / JOB_ID / "checkpoints")
    checkpoints.save(model, 0)
    diagnostics = [diagnose(0)]
    model.learn(total_timesteps=64)
    checkpoints.save(model, 64)
    diagnostics.append(diagnose(64))
    manifest = Manifest(model_id_for_job(JOB_ID), JOB_ID, datetime(2025, 6, 6, tzinfo=UTC), config, {"steps": 64})
    path = write_artifacts(artifacts_dir, model, manifest)
    engine = make_engine(database_url)
    try:
        for record in diagnostics:
            record_diagnostics(engine, JOB_ID, record)
        return register_model(engine, manifest, path)
    finally:
        engine.dispose()
