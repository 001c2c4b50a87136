"""TrainingRun against PostgreSQL with a tiny env: cooperative cancel, resume, one model per job."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sb3_contrib import MaskablePPO
from sqlalchemy import func, select

from scalper_shared.db import make_engine
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.schema.training import JobState, TrainConfig
from scalper_trainer.jobs import TrainingRun
from tests.fakes.tiny_trading_env import tiny_env_factory

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(train_from=date(2025, 7, 1), train_to=date(2025, 7, 2), validation_from=date(2025, 7, 3),
                     validation_to=date(2025, 7, 4), total_timesteps=600, checkpoint_every=200, n_envs=2,
                     device="cpu", ppo={"n_steps": 32, "batch_size": 64, "n_epochs": 1, "net_arch": (16,)})


class Status:
    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.saves = 0

    def save_meta(self) -> None:
        self.saves += 1


class CancelAfterFirstCheckpoint:
    def __init__(self, status: Status) -> None:
        self.status = status

    def is_set(self) -> bool:
        return bool(self.status.meta.get("diagnostics"))


class Never:
    def is_set(self) -> bool:
        return False


def _run(database_url: str, artifacts: Path, status: Status, cancel: Any) -> Any:
    engine = make_engine(database_url)
    try:
        return TrainingRun(CONFIG, "job-1", artifacts_dir=artifacts, engine=engine, env_factory=tiny_env_factory,
                           status=status, cancel=cancel).run()
    finally:
        engine.dispose()


def _count(database_url: str, table: Any) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        n = connection.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(n)


def test_a_cancelled_job_stops_with_a_checkpoint_and_a_retry_finishes_it_once(
        migrated_database_url: str, tmp_path: Path) -> None:
    status = Status()
    cancelled = _run(migrated_database_url, tmp_path, status, CancelAfterFirstCheckpoint(status))
    assert cancelled.state is JobState.CANCELLED and 200 <= cancelled.steps < 600
    assert status.meta["state"] == "cancelled"
    assert _count(migrated_database_url, models) == 0

    resumed_status = Status()
    finished = _run(migrated_database_url, tmp_path, resumed_status, Never())
    assert finished.state is JobState.FINISHED and finished.steps == 600
    assert [d.step for d in finished.diagnostics] == [200, 400, 600]
    assert resumed_status.meta["progress"]["steps"] == 600 and resumed_status.meta["model_id"] == finished.model_id
    model = MaskablePPO.load(Path(finished.artifact_path) / "model.zip")
    assert model.num_timesteps == 600
    # the default preset's linear learning rate went on from the checkpoint instead of restarting:
    # the last update (from step 576 of 600) ran at about 4% of the starting 1e-4
    assert model.policy.optimizer.param_groups[0]["lr"] <= 0.1 * CONFIG.ppo.learning_rate

    again = _run(migrated_database_url, tmp_path, Status(), Never())  # a retry after the end changes nothing
    assert again.model_id == finished.model_id
    assert _count(migrated_database_url, models) == 1
    assert _count(migrated_database_url, training_diagnostics) == 3


def test_checkpoint_diagnostics_reach_the_table_tensorboard_the_status_and_the_manifest(
        migrated_database_url: str, tmp_path: Path) -> None:
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from scalper_shared.db.training import load_diagnostics

    status = Status()
    finished = _run(migrated_database_url, tmp_path, status, Never())
    last = finished.diagnostics[-1]
    # 600 steps of rollouts of 2 x 32: 9 updates of 1 epoch x 1 minibatch each
    assert (last.ppo.updates, last.ppo.gradient_steps) == (9, 9)
    assert last.ppo.approx_kl is not None and last.ppo.clip_fraction is not None
    assert last.validation_steps > last.decision_steps > 0 and last.symbol_days == 2
    assert "total" in last.reward_terms and set(last.seed_criteria) == {
        "hold_share_at_most_35pct", "buy_share_at_least_65pct", "setup_buy_rate_at_least_80pct"}
    engine = make_engine(migrated_database_url)
    try:
        assert load_diagnostics(engine, "job-1") == finished.diagnostics
    finally:
        engine.dispose()
    assert status.meta["diagnostics"][-1]["ppo"]["updates"] == 9 and status.meta["warnings"] == []
    runs = list((tmp_path / "jobs" / "job-1" / "tensorboard").iterdir())
    scalars = set(EventAccumulator(str(runs[0])).Reload().Tags()["scalars"])
    assert {"diagnostics/hold_share", "diagnostics/setup_buy_rate", "diagnostics/ppo_approx_kl",
            "reward/validation/total", "train/approx_kl"} <= scalars
    manifest = json.loads((Path(finished.artifact_path) / "manifest.json").read_text())
    assert manifest["device"] == "cpu" and manifest["metrics"]["device"] == "cpu"
