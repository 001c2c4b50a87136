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
    assert MaskablePPO.load(Path(finished.artifact_path) / "model.zip").num_timesteps == 600

    again = _run(migrated_database_url, tmp_path, Status(), Never())  # a retry after the end changes nothing
    assert again.model_id == finished.model_id
    assert _count(migrated_database_url, models) == 1
    assert _count(migrated_database_url, training_diagnostics) == 3
