"""The policy service's FastAPI app: ops routes, API security, then one router per concern.

Routers are mounted by :func:`build_policy_app`; each lives in its own module (training jobs in
``training_api``, the model registry in ``models_api``, policy actions in ``policy_api`` with the
served model and live decisions of ``serving``) and takes its clients explicitly.
"""

from __future__ import annotations

from fastapi import FastAPI

from scalper_policy.evaluations_api import EvaluationJobs, evaluations_router
from scalper_policy.models_api import models_router
from scalper_policy.policy_api import policy_router
from scalper_policy.serving import PolicyRuntime, build_policy_runtime
from scalper_policy.settings import PolicySettings
from scalper_policy.studies_api import StudyService, studies_router
from scalper_policy.training_api import TrainingJobs, training_router
from scalper_shared.runtime import build_service_app
from scalper_shared.runtime.api_security import API_ERROR_RESPONSES, install_api_security
from scalper_shared.runtime.app import ThreadWorker
from scalper_shared.runtime.bootstrap import Connections
from scalper_shared.runtime.rq_jobs import run_sweeper

SERVICE = "policy"


ABANDONED_SWEEP_S = 15.0
"""How often the policy service hands jobs of dead trainer workers to their retry (rq_jobs)."""


def build_policy_app(settings: PolicySettings, connections: Connections,
                     runtime: PolicyRuntime | None = None) -> FastAPI:
    runtime = runtime or build_policy_runtime(settings, connections)
    jobs = TrainingJobs(connections.redis, job_timeout_s=settings.training_job_timeout_s,
                        retries=settings.training_job_retries, result_ttl_s=settings.training_result_ttl_s,
                        prefix=settings.stream_prefix)
    evaluations = EvaluationJobs(connections.redis, connections.engine, prefix=settings.stream_prefix)
    sweeper = ThreadWorker("abandoned-jobs", lambda stop: run_sweeper(  # dead trainer workers' jobs, within a minute
        [jobs.queue, evaluations.queue], ABANDONED_SWEEP_S, stop))
    app = build_service_app(SERVICE, checks=connections.readiness_checks(), workers=[*runtime.workers, sweeper],
                            docs=settings.api_docs_enabled)
    auth = install_api_security(app, settings)
    app.include_router(training_router(jobs, connections.engine, auth), responses=API_ERROR_RESPONSES)
    app.include_router(models_router(connections.engine, auth), responses=API_ERROR_RESPONSES)
    app.include_router(policy_router(runtime, auth), responses=API_ERROR_RESPONSES)
    app.include_router(evaluations_router(evaluations, auth),
                       responses=API_ERROR_RESPONSES)
    study_service = StudyService(connections.redis, connections.engine.url.render_as_string(hide_password=False),
                                 job_timeout_s=settings.training_job_timeout_s, retries=settings.training_job_retries,
                                 result_ttl_s=settings.training_result_ttl_s, prefix=settings.stream_prefix)
    app.include_router(studies_router(study_service, auth), responses=API_ERROR_RESPONSES)
    app.state.training_jobs = jobs
    app.state.policy = runtime
    return app
