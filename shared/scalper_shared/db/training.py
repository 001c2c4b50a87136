"""Reads of the training tables shared by the trainer, the policy API and execution."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from scalper_shared.core.risk import RiskConfig, saved_risk_config
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.schema.training import Diagnostics


def load_diagnostics(engine: Engine, job_id: str) -> list[Diagnostics]:
    """Every stored diagnostics record of ``job_id``, by step."""
    query = (select(training_diagnostics.c.details).where(training_diagnostics.c.job_id == job_id)
             .order_by(training_diagnostics.c.step))
    with engine.connect() as connection:
        return [Diagnostics.model_validate(details) for details in connection.execute(query).scalars()]


@dataclass(frozen=True, slots=True)
class PromotedRow:
    model_id: str
    artifact_path: str
    spec_hash: str
    risk: RiskConfig
    """The risk-and-sizing config the model was trained and evaluated under."""


def promoted_model(engine: Engine) -> PromotedRow | None:
    """The one promoted model of the ``models`` table, if any."""
    query = select(models.c.id, models.c.artifact_path, models.c.spec_hash, models.c.config).where(models.c.promoted)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return PromotedRow(str(row.id), str(row.artifact_path), str(row.spec_hash), saved_risk_config(row.config))
