"""``/v1/studies``: hyperparameter and reward studies (Optuna in PostgreSQL, trials on RQ).

- ``POST`` (scope ``train``) validates a ``StudyRequest`` (search space included), creates the
  Optuna study in the ``optuna`` schema of ``DATABASE_URL`` and enqueues one job per trial slot on
  the ``training`` queue (deterministic ids, ``Retry``) plus the finalise job, an RQ dependent of
  every trial job (``allow_failure``): it runs once all of them ended. A taken name is a 409. A trial
  job whose worker died is re-queued by the service's abandoned-job sweep (``rq_jobs``) like any
  training job, and continues the same trial.
- ``GET`` (scope ``read``) lists studies; ``GET /{name}`` shows every trial (state, value,
  parameters, walk-forward attributes), the best trial and its registered model;
  ``GET /{name}/report`` is the HTML report once the study ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated

import optuna
from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from fastapi.responses import FileResponse
from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Dependency
from rq.serializers import JSONSerializer

from scalper_policy.training_api import JOBS_INDEX_KEY
from scalper_shared import studies
from scalper_shared.runtime.api_security import Authenticator, Scope
from scalper_shared.runtime.rq_jobs import note_abandoned
from scalper_shared.schema.studies import (
    STUDY_FINALISE_JOB_FUNC,
    STUDY_NAME_PATTERN,
    STUDY_TRIAL_JOB_FUNC,
    StudyAccepted,
    StudyRequest,
    StudyView,
    finalise_job_id,
    trial_job_id,
)
from scalper_shared.schema.training import TRAINING_QUEUE

logger = logging.getLogger(__name__)


class StudyService:
    """Studies as the API sees them: the Optuna storage (opened on first use) and the training queue."""

    def __init__(self, redis: Redis, database_url: str, *, job_timeout_s: int, retries: int, result_ttl_s: int,
                 prefix: str = "", wall_time: Callable[[], float] = time.time) -> None:
        self.redis, self.database_url, self.prefix = redis, database_url, prefix
        self.queue = Queue(prefix + TRAINING_QUEUE, connection=redis, serializer=JSONSerializer)
        self.job_timeout_s, self.retries, self.result_ttl_s = job_timeout_s, retries, result_ttl_s
        self.wall_time = wall_time
        self._storage: optuna.storages.RDBStorage | None = None
        self._lock = threading.Lock()

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        with self._lock:
            if self._storage is None:
                self._storage = studies.open_storage(self.database_url)
            return self._storage

    def create(self, request: StudyRequest) -> StudyAccepted:
        """Create the study and enqueue its trial jobs and its finalise job; StudyExists if taken."""
        request = studies.resolved(request)
        studies.create(self.storage, request)
        ids = [trial_job_id(request.name, slot, self.prefix) for slot in range(request.trials)]
        common = {"result_ttl": self.result_ttl_s, "failure_ttl": self.result_ttl_s}
        for slot, job_id in enumerate(ids):
            self.queue.enqueue(STUDY_TRIAL_JOB_FUNC, request.name, slot, job_id=job_id,
                               retry=Retry(max=self.retries) if self.retries else None,
                               on_failure=Callback(note_abandoned),
                               job_timeout=self.job_timeout_s * request.folds,
                               description=f"study {request.name} trial slot {slot}",
                               meta={"study": request.name, "slot": slot}, **common)
        final = finalise_job_id(request.name, self.prefix)
        self.queue.enqueue(STUDY_FINALISE_JOB_FUNC, request.name, job_id=final,
                           depends_on=Dependency(jobs=ids, allow_failure=True), job_timeout=3_600,
                           description=f"study {request.name}: register the best model, write the report",
                           meta={"study": request.name}, **common)
        now = self.wall_time()
        self.redis.zadd(JOBS_INDEX_KEY, {job_id: now for job_id in ids})
        logger.info("study %s: %d trial jobs and finalise job %s enqueued", request.name, len(ids), final)
        return StudyAccepted(name=request.name, trial_jobs=ids, finalise_job=final,
                             status_url=f"/v1/studies/{request.name}")

    def view(self, name: str) -> StudyView | None:
        study = studies.load(self.storage, name)
        return None if study is None else studies.study_view(study)

    def list(self) -> list[StudyView]:
        out = []
        for name in studies.names(self.storage):
            study = studies.load(self.storage, name)
            if study is not None and studies.REQUEST_ATTR in study.user_attrs:
                out.append(studies.study_view(study, with_trials=False))
        return out


StudyName = Annotated[str, Path(pattern=STUDY_NAME_PATTERN, description="A study name")]
NOT_FOUND = {"description": "No study with this name"}
CONFLICT = {"description": "A study with this name exists already"}
NO_REPORT = {"description": "The study has not ended: no report yet"}


def studies_router(service: StudyService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/studies", tags=["studies"])

    def _found(name: str) -> StudyView:
        view = service.view(name)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study {name!r}")
        return view

    @router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=StudyAccepted,
                 dependencies=[Depends(auth.require(Scope.TRAIN))], responses={409: CONFLICT})
    def create(request: StudyRequest, response: Response) -> StudyAccepted:
        """Create a study and queue its trials on the training workers."""
        try:
            accepted = service.create(request)
        except studies.StudyExists as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        response.headers["Location"] = accepted.status_url
        return accepted

    @router.get("", response_model=list[StudyView], dependencies=[Depends(auth.require(Scope.READ))])
    def list_studies() -> list[StudyView]:
        """Every study with its trial counts and best trial (trials omitted; ask for one study)."""
        return service.list()

    @router.get("/{name}", response_model=StudyView, dependencies=[Depends(auth.require(Scope.READ))],
                responses={404: NOT_FOUND})
    def get_study(name: StudyName) -> StudyView:
        return _found(name)

    @router.get("/{name}/report", response_class=FileResponse, dependencies=[Depends(auth.require(Scope.READ))],
                responses={200: {"content": {"text/html": {}}}, 404: NOT_FOUND, 409: NO_REPORT})
    def get_report(name: StudyName) -> FileResponse:
        """The study's HTML report, written when its last trial ended."""
        view = _found(name)
        if not view.report or not FilePath(view.report).is_file():
            raise HTTPException(status.HTTP_409_CONFLICT, f"study {name} has no report yet")
        return FileResponse(view.report, media_type="text/html")

    return router
