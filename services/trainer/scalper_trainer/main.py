"""Entrypoint: an RQ worker on queues ``training`` and ``evaluation`` (JSON serializer) with a health/metrics server.

torch, sb3 and the job code are imported here, once per worker: RQ forks a work-horse per job and
the horse inherits them. RQ owns the main thread (SIGTERM: the worker asks the running job to
checkpoint, kills it after ``TRAINER_PREEMPT_GRACE_S`` if it has not, re-queues it and exits; see
``rq_jobs.HeartbeatWorker``); the HTTP server runs in a daemon thread beside it. A job whose worker died
(SIGKILL, lost host) is noticed three heartbeat intervals after its last beat by the policy service's
sweep (``scalper_shared.runtime.rq_jobs``), re-queued with a warning in its status, and resumes from
its last checkpoint.
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI
from prometheus_client import REGISTRY
from rq import Queue
from rq.serializers import JSONSerializer

from scalper_shared.db import migrate
from scalper_shared.runtime import build_service_app, configure_logging
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.runtime.rq_jobs import HeartbeatWorker
from scalper_shared.schema.evaluation import EVALUATION_QUEUE
from scalper_shared.schema.training import TRAINING_QUEUE
from scalper_shared.settings import load_settings
from scalper_trainer.metrics import TrainerCollector
from scalper_trainer.settings import TrainerSettings

SERVICE = "trainer"
logger = logging.getLogger(__name__)


def _serve_in_thread(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    # uvicorn captures signals in the main thread only, so RQ's worker keeps SIGTERM/SIGINT
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    threading.Thread(target=server.run, name="health-http", daemon=True).start()


def preload_training(settings: TrainerSettings) -> None:
    """Import torch and the job module once, before RQ forks work-horses."""
    import torch

    import scalper_trainer.evaluation.jobs  # noqa: F401
    import scalper_trainer.jobs  # noqa: F401
    import scalper_trainer.studies.finalise  # noqa: F401  (optuna and plotly too)
    import scalper_trainer.studies.trial  # noqa: F401

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    logger.info("torch %s loaded (%d threads, cuda available: %s)", torch.__version__,
                torch.get_num_threads(), torch.cuda.is_available())


def main() -> None:
    settings = load_settings(TrainerSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    connections = connect(settings)
    migrate(connections.engine)
    preload_training(settings)
    REGISTRY.register(TrainerCollector(connections.redis, settings.stream_prefix))
    _serve_in_thread(build_service_app(SERVICE, checks=connections.readiness_checks()),
                     settings.http_host, settings.http_port)
    queues = [Queue(settings.stream_prefix + name, connection=connections.redis, serializer=JSONSerializer)
              for name in (TRAINING_QUEUE, EVALUATION_QUEUE)]
    worker = HeartbeatWorker(queues, connection=connections.redis, serializer=JSONSerializer,
                             job_monitoring_interval=settings.job_monitoring_interval_s,
                             preempt_grace_s=settings.preempt_grace_s)
    logger.info("trainer worker %s listening on queues %s", worker.name, ", ".join(q.name for q in queues))
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
