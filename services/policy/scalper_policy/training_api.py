"""``/v1/training-jobs``: enqueue, list, inspect and cancel training jobs (RQ queue ``training``).

- ``POST`` (scope ``train``) validates a ``TrainConfig`` and enqueues it with ``Retry(max=3)``;
  an ``Idempotency-Key`` header makes the job id deterministic: the same key and config give the
  same job (202 again), the same key with another config is a 409.
- ``GET`` (scope ``read``) shows state, progress (steps, steps/s, ETA), diagnostics and errors.
- ``DELETE`` (scope ``train``) cancels: a queued job is cancelled in RQ; a running one gets the
  cooperative cancel flag (it checkpoints and stops within seconds); ``?force=true`` also sends
  RQ's stop-job command, which kills the work-horse at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response, status
from redis import Redis
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from scalper_shared.bus.groups import text
from scalper_shared.db.training import load_diagnostics
from scalper_shared.runtime.api_security import Authenticator, Scope
from scalper_shared.runtime.rq_jobs import note_abandoned
from scalper_shared.schema.training import (
    TRAINING_JOB_FUNC,
    TRAINING_QUEUE,
    Diagnostics,
    JobState,
    Progress,
    TrainConfig,
    TrainingJobAccepted,
    TrainingJobView,
    cancel_flag_key,
    job_id_for_key,
)

logger = logging.getLogger(__name__)

JOBS_INDEX_KEY = "scalper:training:jobs"
IDEMPOTENCY_KEY_PREFIX = "scalper:training:idempotency:"
CANCEL_FLAG_TTL_S = 7 * 86_400
_RQ_STATES = {
    JobStatus.QUEUED: JobState.QUEUED, JobStatus.DEFERRED: JobState.QUEUED, JobStatus.CREATED: JobState.QUEUED,
    JobStatus.SCHEDULED: JobState.SCHEDULED, JobStatus.STARTED: JobState.RUNNING,
    JobStatus.FINISHED: JobState.FINISHED, JobStatus.FAILED: JobState.FAILED,
    JobStatus.STOPPED: JobState.CANCELLED, JobStatus.CANCELED: JobState.CANCELLED,
}


class IdempotencyConflict(Exception):
    """The key was used before with a different config."""


class TrainingJobs:
    """The training queue as the API sees it (no torch here: the worker runs the job by name)."""

    def __init__(self, redis: Redis, *, job_timeout_s: int, retries: int, result_ttl_s: int,
                 prefix: str = "", new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 wall_time: Callable[[], float] = time.time) -> None:
        self.redis, self.prefix = redis, prefix
        self.queue = Queue(prefix + TRAINING_QUEUE, connection=redis, serializer=JSONSerializer)
        self.job_timeout_s, self.retries, self.result_ttl_s = job_timeout_s, retries, result_ttl_s
        self.new_id, self.wall_time = new_id, wall_time

    def submit(self, config: TrainConfig, idempotency_key: str | None) -> tuple[Job, bool]:
        """Enqueue ``config``; returns (job, created). A repeated key returns the existing job."""
        config_hash = config.config_hash()
        job_id = job_id_for_key(idempotency_key, self.prefix) if idempotency_key else f"train-{self.new_id()}"
        if idempotency_key:
            claim = IDEMPOTENCY_KEY_PREFIX + job_id
            if not self.redis.set(claim, config_hash, nx=True, ex=self.result_ttl_s):
                stored = self.redis.get(claim)
                if stored is not None and text(stored) != config_hash:
                    raise IdempotencyConflict(f"Idempotency-Key already used for job {job_id} with another config")
                existing = self.fetch(job_id)
                if existing is not None:
                    return existing, False
        job = self.queue.enqueue(
            TRAINING_JOB_FUNC, config.model_dump(mode="json"), job_id=job_id,
            retry=Retry(max=self.retries) if self.retries else None, on_failure=Callback(note_abandoned),
            job_timeout=self.job_timeout_s,
            result_ttl=self.result_ttl_s, failure_ttl=self.result_ttl_s,
            description=f"train {','.join(config.symbols)} {config.train_from}..{config.train_to} "
                        f"{config.total_timesteps} steps",
            meta={"config_hash": config_hash, "state": JobState.QUEUED.value})
        self.redis.zadd(JOBS_INDEX_KEY, {job_id: self.wall_time()})
        logger.info("training job %s enqueued (%d steps, seed %d)", job_id, config.total_timesteps, config.seed)
        return job, True

    def fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return None

    def recent(self, limit: int) -> list[Job]:
        ids = [text(i) for i in self.redis.zrevrange(JOBS_INDEX_KEY, 0, limit - 1)]
        jobs = Job.fetch_many(ids, connection=self.redis, serializer=JSONSerializer)
        return [job for job in jobs if job is not None]

    def cancel(self, job: Job, *, force: bool) -> None:
        """Queued: RQ cancel. Running: the cooperative flag (and RQ's stop-job command when forced)."""
        self.redis.set(cancel_flag_key(job.id), "1", ex=CANCEL_FLAG_TTL_S)
        rq_status = job.get_status()
        if rq_status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED):
            job.cancel()
            logger.info("training job %s cancelled before it started", job.id)
        elif rq_status == JobStatus.STARTED and force:
            send_stop_job_command(self.redis, job.id, serializer=JSONSerializer)
            logger.info("training job %s: stop-job command sent", job.id)
        else:
            logger.info("training job %s: cooperative cancel requested", job.id)


def job_state(job: Job) -> JobState:
    rq_status = job.get_status(refresh=False)
    state = _RQ_STATES.get(rq_status, JobState.QUEUED)
    if state is JobState.FINISHED and job.meta.get("state") == JobState.CANCELLED.value:
        return JobState.CANCELLED
    return state


def _error(job: Job) -> str | None:
    result = job.latest_result()
    if result is not None and result.type in (Result.Type.FAILED, Result.Type.STOPPED):
        return result.exc_string or result.type.name.lower()
    return None


def job_view(job: Job, diagnostics: list[Diagnostics]) -> TrainingJobView:
    meta: dict[str, Any] = job.meta or {}
    args = job.args or ()
    progress = meta.get("progress")
    return TrainingJobView(
        id=job.id, state=job_state(job), rq_status=str(job.get_status(refresh=False).value),
        config=args[0] if args and isinstance(args[0], dict) else None,
        progress=Progress.model_validate(progress) if progress else None,
        diagnostics=diagnostics, warnings=list(meta.get("warnings", [])), model_id=meta.get("model_id"),
        error=_error(job), enqueued_at=job.enqueued_at, started_at=job.started_at, ended_at=job.ended_at,
        retries_left=job.retries_left)


JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="An RQ job id")]
NOT_FOUND = {"description": "No training job with this id"}
CONFLICT = {"description": "The Idempotency-Key names another config, or the job already ended"}


def training_router(jobs: TrainingJobs, engine: Engine, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/training-jobs", tags=["training"])

    def _found(job_id: str) -> Job:
        job = jobs.fetch(job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no training job {job_id!r}")
        return job

    @router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TrainingJobAccepted,
                 dependencies=[Depends(auth.require(Scope.TRAIN))], responses={409: CONFLICT})
    def submit(config: TrainConfig, response: Response,
               idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> TrainingJobAccepted:
        """Enqueue a training job; repeat the ``Idempotency-Key`` to get the same job back."""
        try:
            job, _created = jobs.submit(config, idempotency_key)
        except IdempotencyConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        location = f"/v1/training-jobs/{job.id}"
        response.headers["Location"] = location
        return TrainingJobAccepted(id=job.id, state=job_state(job), status_url=location)

    @router.get("", response_model=list[TrainingJobView], dependencies=[Depends(auth.require(Scope.READ))])
    def list_jobs(limit: Annotated[int, Query(gt=0, le=500)] = 50) -> list[TrainingJobView]:
        """The newest jobs first (diagnostics omitted; ask for one job to see them)."""
        return [job_view(job, []) for job in jobs.recent(limit)]

    @router.get("/{job_id}", response_model=TrainingJobView, dependencies=[Depends(auth.require(Scope.READ))],
                responses={404: NOT_FOUND})
    def get_job(job_id: JobId) -> TrainingJobView:
        return job_view(_found(job_id), load_diagnostics(engine, job_id))

    @router.delete("/{job_id}", status_code=status.HTTP_202_ACCEPTED, response_model=TrainingJobView,
                   dependencies=[Depends(auth.require(Scope.TRAIN))], responses={404: NOT_FOUND, 409: CONFLICT})
    def cancel_job(job_id: JobId, force: bool = False) -> TrainingJobView:
        job = _found(job_id)
        if job_state(job) in (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED):
            raise HTTPException(status.HTTP_409_CONFLICT, f"training job {job_id} already {job_state(job).value}")
        jobs.cancel(job, force=force)
        return job_view(_found(job_id), load_diagnostics(engine, job_id))

    return router
