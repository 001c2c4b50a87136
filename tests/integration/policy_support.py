"""Model rows in a real ``models`` table for the policy service's integration tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Engine, insert

from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db.models import models
from tests.unit.policy_support import write_artifact


def register(engine: Engine, root: Path, model_id: str, *, seed: int = 0,
             spec_hash: str = FEATURE_SPEC.spec_hash) -> Path:
    """Write an artifact directory and its ``models`` row (not promoted)."""
    directory = write_artifact(root, model_id, seed=seed, spec_hash=spec_hash)
    with engine.begin() as connection:
        connection.execute(insert(models).values(
            id=model_id, job_id=f"job-{model_id}", config={}, spec_hash=spec_hash, train_from=date(2024, 1, 2),
            train_to=date(2024, 2, 1), validation_from=date(2024, 2, 2), validation_to=date(2024, 2, 9),
            total_timesteps=1000, metrics={}, artifact_path=str(directory)))
    return directory
