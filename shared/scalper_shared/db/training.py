"""Reads of the training tables shared by the trainer and the policy API."""

from __future__ import annotations

from sqlalchemy import Engine, select

from scalper_shared.db.models import training_diagnostics
from scalper_shared.schema.training import Diagnostics


def load_diagnostics(engine: Engine, job_id: str) -> list[Diagnostics]:
    """Every stored diagnostics record of ``job_id``, by step."""
    columns = [training_diagnostics.c[name] for name in Diagnostics.model_fields]
    query = select(*columns).where(training_diagnostics.c.job_id == job_id).order_by(training_diagnostics.c.step)
    with engine.connect() as connection:
        return [Diagnostics.model_validate(dict(row._mapping)) for row in connection.execute(query)]
