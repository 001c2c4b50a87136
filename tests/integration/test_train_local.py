"""`scalper train --local`: the worker's code path in this process, its files, and no silent synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_shared.db import make_engine
from scalper_shared.db.models import models, training_diagnostics

pytestmark = pytest.mark.integration

DIAGNOSTIC_KEYS = {"step", "updates", "approx_kl", "hold_share", "buy_share", "setup_buy_rate", "nonsetup_buy_rate",
                   "entropy", "trades_per_symbol_day", "pnl_per_symbol_day", "reward_terms", "seed_criteria"}
WINDOW = ["--symbols", "SPY,QQQ", "--from", "2025-07-07", "--to", "2025-07-11", "--validation-from", "2025-07-14",
          "--validation-to", "2025-07-15"]


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "TRAINER_TORCH_THREADS": "1"}


def _count(database_url: str, table: object) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_train_local_writes_diagnostics_at_every_checkpoint_and_registers_the_model(
        migrated_database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["train", "--local", *WINDOW, "--source", "synthetic", "--timesteps", "12288", "--seed", "3",
            "--out", str(out)]
    result = CliRunner().invoke(app, args, env=_env(migrated_database_url, tmp_path))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    rows = json.loads((out / "diagnostics.json").read_text())
    assert [r["step"] for r in rows] == [5_008, 10_000, 12_288]  # the first multiple of 16 envs past each milestone
    for row in rows:
        assert set(row) >= DIAGNOSTIC_KEYS, DIAGNOSTIC_KEYS - set(row)
        assert set(row["seed_criteria"]) == {"hold_share_at_most_35pct", "buy_share_at_least_65pct",
                                             "setup_buy_rate_at_least_80pct"}
        assert "total" in row["reward_terms"]
    assert rows[-1]["updates"] == 3  # 12,288 steps in rollouts of 16 x 256
    model_id = (out / "model_id").read_text().strip()
    engine = make_engine(migrated_database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(select(models).where(models.c.id == model_id)).one()
    finally:
        engine.dispose()
    assert row.config["preset"] == "default" and row.config["data_source"] == "synthetic"
    assert (Path(row.artifact_path) / "policy.npz").is_file()
    assert _count(migrated_database_url, training_diagnostics) == 3
    assert "P(HOLD)" in result.output and "model-" in result.output


def test_training_on_an_empty_database_fails_at_once_saying_what_to_import(
        migrated_database_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--local", *WINDOW, "--timesteps", "5000", "--out", str(tmp_path)],
                                env=_env(migrated_database_url, tmp_path))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "no bars for ['SPY', 'QQQ'] between 2025-07-07 and 2025-07-11" in message
    assert "scalper ingest file" in message and "--source synthetic" in message
    assert "Traceback" not in result.output
    assert _count(migrated_database_url, models) == 0


def test_an_invalid_local_config_is_refused_before_anything_runs(migrated_database_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--local", *WINDOW, "--preset", "nope", "--out", str(tmp_path)],
                                env=_env(migrated_database_url, tmp_path))
    assert result.exit_code == 2
    assert "unknown preset 'nope'" in " ".join(result.output.split())
