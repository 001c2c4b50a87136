"""Reads and writes of the ``evaluations`` table, shared by the policy API and the trainer worker.

Each write is one short transaction; ``updated_at`` moves with every change of a row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from scalper_shared.db.models import evaluations
from scalper_shared.schema.evaluation import EvaluationRequest, EvaluationStatus


def create_evaluation(engine: Engine, evaluation_id: str, request: EvaluationRequest) -> None:
    with engine.begin() as connection:
        connection.execute(insert(evaluations).values(
            id=evaluation_id, model_id=request.model_id, status=EvaluationStatus.QUEUED.value,
            request=request.model_dump(mode="json"), progress=0.0, stage="queued"))


def set_progress(engine: Engine, evaluation_id: str, progress: float, stage: str) -> None:
    """Mark the row running at ``progress`` (0..1) in ``stage``."""
    _update(engine, evaluation_id, status=EvaluationStatus.RUNNING.value,
            progress=min(max(progress, 0.0), 1.0), stage=stage)


def finish_evaluation(engine: Engine, evaluation_id: str, metrics: dict[str, Any], report_dir: str) -> None:
    _update(engine, evaluation_id, status=EvaluationStatus.FINISHED.value, progress=1.0, stage="done",
            metrics=metrics, summary=str(metrics.get("summary", "")), report_dir=report_dir, error=None)


def fail_evaluation(engine: Engine, evaluation_id: str, error: str) -> None:
    _update(engine, evaluation_id, status=EvaluationStatus.FAILED.value, stage="failed", error=error[:10_000])


def requeue_evaluation(engine: Engine, evaluation_id: str, why: str) -> None:
    """Back to queued (its worker went away; it restarts from the beginning), ``why`` as its stage."""
    _update(engine, evaluation_id, status=EvaluationStatus.QUEUED.value, progress=0.0, stage=why[:500])


def load_evaluation(engine: Engine, evaluation_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(select(evaluations).where(evaluations.c.id == evaluation_id)).one_or_none()
    return None if row is None else dict(row._mapping)


def _update(engine: Engine, evaluation_id: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(evaluations).where(evaluations.c.id == evaluation_id)
                           .values(**values, updated_at=func.now()))
