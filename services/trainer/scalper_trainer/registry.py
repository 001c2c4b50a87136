"""Model registry (trainer side): the artifact directory, the ``models`` row and diagnostics rows.

A finished job writes ``ARTIFACTS_DIR/models/<model id>/`` (``model.zip``: the SB3 model,
``policy.npz``: the exported numpy actor, ``manifest.json``) and exactly one ``models`` row: the
model id is derived from the job id and ``job_id`` is unique, so a retried job re-registers nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.schema.training import Diagnostics, TrainConfig
from scalper_trainer.export import export_numpy_policy

logger = logging.getLogger(__name__)

MODEL_FILE = "model.zip"
POLICY_FILE = "policy.npz"
MANIFEST_FILE = "manifest.json"
VERSIONED_PACKAGES = ("scalper-shared", "scalper-trainer", "torch", "stable-baselines3", "sb3-contrib",
                      "gymnasium", "numpy")


def model_id_for_job(job_id: str) -> str:
    return "model-" + hashlib.sha256(job_id.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Manifest:
    model_id: str
    job_id: str
    created_at: datetime
    config: TrainConfig
    metrics: dict[str, Any]
    device: str = "cpu"
    """The torch device the model was actually trained on."""

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "device": self.device,
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat(),
            "config": self.config.model_dump(mode="json"),
            "config_hash": self.config.config_hash(),
            "feature_spec_hash": FEATURE_SPEC.spec_hash,
            "feature_spec_version": FEATURE_SPEC.version,
            "data_window": {"symbols": list(self.config.symbols),
                            "train": [str(self.config.train_from), str(self.config.train_to)],
                            "validation": [str(self.config.validation_from), str(self.config.validation_to)]},
            "metrics": self.metrics,
            "package_versions": package_versions(),
            "git_revision": git_revision(),
            "files": {"sb3_model": MODEL_FILE, "numpy_policy": POLICY_FILE},
        }


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    """``GIT_REVISION`` if set (images), else ``git rev-parse HEAD`` of the source tree, else None."""
    if revision := os.environ.get("GIT_REVISION"):
        return revision
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def write_artifacts(artifacts_dir: Path, model: Any, manifest: Manifest) -> Path:
    """Write the artifact directory of ``manifest.model_id`` atomically (staging dir + rename)."""
    final = artifacts_dir / "models" / manifest.model_id
    staging = final.with_name(f".{manifest.model_id}.{os.getpid()}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save(staging / MODEL_FILE)
    export_numpy_policy(model).save(staging / POLICY_FILE)
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    if final.exists():  # a retry after the directory was written but before the row was
        shutil.rmtree(final)
    os.replace(staging, final)
    logger.info("model %s: artifacts written to %s", manifest.model_id, final)
    return final


def register_model(engine: Engine, manifest: Manifest, artifact_path: Path, name: str | None = None) -> str:
    """Insert the job's ``models`` row unless it exists; returns the model id either way. ``name``
    names the model (a study registers its best model under the study's name)."""
    config = manifest.config
    row = {
        "id": manifest.model_id, "job_id": manifest.job_id, "created_at": manifest.created_at,
        "config": config.model_dump(mode="json"), "spec_hash": FEATURE_SPEC.spec_hash,
        "train_from": config.train_from, "train_to": config.train_to,
        "validation_from": config.validation_from, "validation_to": config.validation_to,
        "total_timesteps": config.total_timesteps, "metrics": manifest.metrics,
        "artifact_path": str(artifact_path), "name": name,
    }
    with engine.begin() as connection:
        inserted = connection.execute(
            insert(models).values(row).on_conflict_do_nothing(index_elements=["job_id"]).returning(models.c.id)
        ).scalar_one_or_none()
        if inserted is not None:
            logger.info("model %s registered for job %s", inserted, manifest.job_id)
            return str(inserted)
        existing = connection.execute(select(models.c.id).where(models.c.job_id == manifest.job_id)).scalar_one()
    logger.info("job %s already registered model %s", manifest.job_id, existing)
    return str(existing)


def read_manifest(artifact_path: Path) -> Manifest:
    """The :class:`Manifest` written into ``artifact_path`` (an artifact directory)."""
    data = json.loads((artifact_path / MANIFEST_FILE).read_text())
    return Manifest(data["model_id"], data["job_id"], datetime.fromisoformat(data["created_at"]),
                    TrainConfig.model_validate(data["config"]), data["metrics"], device=data.get("device", "cpu"))


def diagnostic_columns(d: Diagnostics) -> dict[str, Any]:
    """The ``training_diagnostics`` row of ``d``: the headline figures as columns, all of it in ``details``."""
    return {"step": d.step, "updates": d.ppo.updates, "approx_kl": d.ppo.approx_kl, "hold_share": d.hold_share,
            "buy_share": d.buy_share, "entropy": d.entropy, "setup_buy_rate": d.setup_buy_rate,
            "nonsetup_buy_rate": d.nonsetup_buy_rate, "trades_per_account_day": d.trades_per_account_day,
            "pnl_per_account_day": d.pnl_per_account_day, "collapse_warning": d.collapse_warning,
            "not_learning_warning": d.not_learning_warning, "details": d.model_dump(mode="json")}


def record_diagnostics(engine: Engine, job_id: str, diagnostics: Diagnostics) -> None:
    """Store (or replace, on a retry) the diagnostics of ``job_id`` at ``diagnostics.step``."""
    values = {"job_id": job_id, **diagnostic_columns(diagnostics)}
    statement = insert(training_diagnostics).values(values)
    changing = {k: statement.excluded[k] for k in values if k not in ("job_id", "step")}
    with engine.begin() as connection:
        connection.execute(statement.on_conflict_do_update(index_elements=["job_id", "step"], set_=changing))

