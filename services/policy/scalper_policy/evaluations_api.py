"""``/v1/evaluations``: queue an offline evaluation of a model and read its outcome and report.

- ``POST`` (scope ``train``) validates an ``EvaluationRequest``, checks the model is registered,
  writes the ``evaluations`` row (queued) and enqueues the trainer's job on queue ``evaluation``. A
  job whose trainer worker stopped (shutdown) is re-queued and its row says so (``queued``, the reason
  as its stage); one whose worker died is marked failed by the abandoned-job sweep (``rq_jobs``).
- ``GET /{id}`` (scope ``read``): status, progress, the honest one-line summary and all metrics.
- ``GET /{id}/report`` (scope ``read``): the HTML report; ``GET /{id}/{name}`` its plots and
  ``metrics.json``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.responses import FileResponse
from redis import Redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, select

from scalper_shared.db.evaluations import create_evaluation, load_evaluation
from scalper_shared.db.models import models
from scalper_shared.runtime.api_security import Authenticator, Scope
from scalper_shared.runtime.rq_jobs import note_evaluation_interrupted
from scalper_shared.schema.evaluation import (
    EVALUATION_JOB_FUNC,
    EVALUATION_QUEUE,
    EvaluationAccepted,
    EvaluationRequest,
    EvaluationStatus,
    EvaluationView,
)

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
FILE_NAME = re.compile(r"^[a-z_]+\.(png|json)$")
EVALUATION_TIMEOUT_S = 6 * 3600
RESULT_TTL_S = 30 * 86_400


class EvaluationJobs:
    """Rows in ``evaluations`` plus jobs on the ``evaluation`` queue (the trainer worker runs them)."""

    def __init__(self, redis: Redis, engine: Engine, new_id: Callable[[], str] = lambda: uuid.uuid4().hex, *,
                 prefix: str = "") -> None:
        self.engine, self.new_id = engine, new_id
        self.queue = Queue(prefix + EVALUATION_QUEUE, connection=redis, serializer=JSONSerializer)

    def model_exists(self, model_id: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(select(models.c.id).where(models.c.id == model_id)).first() is not None

    def submit(self, request: EvaluationRequest) -> str:
        evaluation_id = f"eval-{self.new_id()}"
        create_evaluation(self.engine, evaluation_id, request)
        self.queue.enqueue(EVALUATION_JOB_FUNC, evaluation_id, request.model_dump(mode="json"), job_id=evaluation_id,
                           job_timeout=EVALUATION_TIMEOUT_S, result_ttl=RESULT_TTL_S, failure_ttl=RESULT_TTL_S,
                           description=f"evaluate {request.model_id} {request.start}..{request.end}",
                           on_failure=Callback(note_evaluation_interrupted))
        logger.info("evaluation %s of model %s enqueued (%s..%s)", evaluation_id, request.model_id,
                    request.start, request.end)
        return evaluation_id


def evaluation_view(row: dict[str, Any]) -> EvaluationView:
    finished = row["status"] == EvaluationStatus.FINISHED.value
    return EvaluationView(
        id=row["id"], model_id=row["model_id"], status=row["status"], request=row["request"],
        progress=row["progress"], stage=row["stage"], summary=row["summary"], metrics=row["metrics"],
        report_url=f"/v1/evaluations/{row['id']}/report" if finished else None, error=row["error"],
        created_at=row["created_at"], updated_at=row["updated_at"])


NO_MODEL = {"description": "No registered model with this id"}
NO_EVALUATION = {"description": "No evaluation with this id"}
NO_FILE = {"description": "No evaluation with this id, or no such file in its report"}
NOT_FINISHED = {"description": "The evaluation has not finished: no report yet"}


def evaluations_router(jobs: EvaluationJobs, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])

    def _row(evaluation_id: str) -> dict[str, Any]:
        row = load_evaluation(jobs.engine, evaluation_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluation {evaluation_id!r}")
        return row

    def _report_file(evaluation_id: str, name: str) -> Path:
        row = _row(evaluation_id)
        if row["status"] != EvaluationStatus.FINISHED.value or not row["report_dir"]:
            raise HTTPException(status.HTTP_409_CONFLICT, f"evaluation {evaluation_id} is {row['status']}, no report yet")
        path = Path(row["report_dir"]) / name
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"evaluation {evaluation_id} has no file {name!r}")
        return path

    @router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EvaluationAccepted,
                 dependencies=[Depends(auth.require(Scope.TRAIN))], responses={404: NO_MODEL})
    def submit(request: EvaluationRequest, response: Response) -> EvaluationAccepted:
        """Queue an evaluation of a registered model over ``start..end``."""
        if not jobs.model_exists(request.model_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no registered model {request.model_id!r}")
        evaluation_id = jobs.submit(request)
        location = f"/v1/evaluations/{evaluation_id}"
        response.headers["Location"] = location
        return EvaluationAccepted(id=evaluation_id, status=EvaluationStatus.QUEUED, status_url=location)

    @router.get("/{evaluation_id}", response_model=EvaluationView, dependencies=[Depends(auth.require(Scope.READ))],
                responses={404: NO_EVALUATION})
    def get_evaluation(evaluation_id: str) -> EvaluationView:
        return evaluation_view(_row(evaluation_id))

    @router.get("/{evaluation_id}/report", response_class=FileResponse,
                dependencies=[Depends(auth.require(Scope.READ))],
                responses={200: {"content": {"text/html": {}}}, 404: NO_FILE, 409: NOT_FINISHED})
    def get_report(evaluation_id: str) -> FileResponse:
        """The HTML report (its images resolve to ``/v1/evaluations/{id}/<plot>.png``)."""
        return FileResponse(_report_file(evaluation_id, REPORT_FILE), media_type="text/html")

    @router.get("/{evaluation_id}/{name}", response_class=FileResponse,
                dependencies=[Depends(auth.require(Scope.READ))],
                responses={200: {"content": {"image/png": {}, "application/json": {}}}, 404: NO_FILE,
                           409: NOT_FINISHED})
    def get_file(evaluation_id: str, name: str) -> FileResponse:
        """A plot (``*.png``) or ``metrics.json`` of a finished evaluation."""
        if not FILE_NAME.match(name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report file {name!r}")
        return FileResponse(_report_file(evaluation_id, name))

    return router
