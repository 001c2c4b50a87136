"""Reads of the training tables shared by the trainer, the policy API and execution."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, text, update

from scalper_shared.core.premium import PremiumModelConfig, saved_premium_config
from scalper_shared.core.risk import RiskConfig, saved_risk_config
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.schema.training import Diagnostics, ModelView

PROMOTION_LOCK_KEY = 0x5CA1_0DE1


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
    premium: PremiumModelConfig
    """The premium model it was trained and evaluated under."""


def promoted_model(engine: Engine) -> PromotedRow | None:
    """The one promoted model of the ``models`` table, if any."""
    query = select(models.c.id, models.c.artifact_path, models.c.spec_hash, models.c.config).where(models.c.promoted)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return PromotedRow(str(row.id), str(row.artifact_path), str(row.spec_hash), saved_risk_config(row.config),
                       saved_premium_config(row.config))


def promote_model(engine: Engine, model_id: str) -> ModelView | None:
    """Make ``model_id`` the one promoted model; None when no ready model has that id. One transaction
    under an advisory lock (a partial unique index backs the one-promoted rule up)."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROMOTION_LOCK_KEY})
        exists = connection.execute(
            select(models.c.id).where(models.c.id == model_id, models.c.status == "ready")).scalar_one_or_none()
        if exists is None:
            return None
        connection.execute(update(models).where(models.c.promoted, models.c.id != model_id).values(promoted=False))
        connection.execute(update(models).where(models.c.id == model_id).values(promoted=True))
        row = connection.execute(select(models).where(models.c.id == model_id)).one()
    return ModelView.model_validate(dict(row._mapping))
