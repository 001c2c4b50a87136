"""RQ entry of an evaluation (queue ``evaluation``, JSON serializer), run by the trainer worker.

The policy API wrote the ``evaluations`` row (queued) and enqueued ``(evaluation_id, request)``;
this marks it running, records progress by stage, and ends it finished (metrics, report directory
``ARTIFACTS_DIR/evaluations/<id>``) or failed (the error) in the same row.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scalper_shared.db.evaluations import fail_evaluation, finish_evaluation, set_progress
from scalper_shared.schema.evaluation import EvaluationRequest
from scalper_trainer.evaluation.run import EvaluationOutcome, run_evaluation

logger = logging.getLogger(__name__)


def report_dir_for(artifacts_dir: Path, evaluation_id: str) -> Path:
    return artifacts_dir / "evaluations" / evaluation_id


def execute_evaluation(engine: Engine, evaluation_id: str, request: EvaluationRequest, *,
                       artifacts_dir: Path, database_url: str) -> EvaluationOutcome:
    """Run ``request`` for the row ``evaluation_id``, keeping the row's status and progress current."""
    set_progress(engine, evaluation_id, 0.0, "starting")
    try:
        outcome = run_evaluation(
            request.model_id, request.start, request.end, artifacts_dir=artifacts_dir,
            out_dir=report_dir_for(artifacts_dir, evaluation_id), database_url=database_url,
            symbols=request.symbols, seed=request.seed, data_source=request.data_source,
            data_seed=request.data_seed, data_edge=request.data_edge, checkpoints=request.checkpoints,
            premium=request.premium, fills=request.fills,
            progress=lambda fraction, stage: set_progress(engine, evaluation_id, fraction, stage))
    except Exception as exc:
        logger.exception("evaluation %s of model %s failed", evaluation_id, request.model_id)
        fail_evaluation(engine, evaluation_id, f"{type(exc).__name__}: {exc}")
        raise
    finish_evaluation(engine, evaluation_id, outcome.metrics, str(outcome.paths.directory))
    logger.info("evaluation %s finished: %s", evaluation_id, outcome.metrics["summary"])
    return outcome


def run_evaluation_job(evaluation_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: evaluate ``request`` (an ``EvaluationRequest`` as JSON) into row ``evaluation_id``."""
    from scalper_shared.db import make_engine
    from scalper_shared.settings import load_settings
    from scalper_trainer.settings import TrainerSettings

    settings = load_settings(TrainerSettings)
    engine = make_engine(settings.database_url)
    try:
        outcome = execute_evaluation(engine, evaluation_id, EvaluationRequest.model_validate(request),
                                     artifacts_dir=settings.artifacts_dir, database_url=settings.database_url)
        return {"evaluation_id": evaluation_id, "summary": outcome.metrics["summary"],
                "report_dir": str(outcome.paths.directory)}
    finally:
        engine.dispose()
