"""Entrypoint: an RQ worker on queue ``training`` (JSON serializer) with a health/metrics server.

RQ owns the main thread (it handles SIGTERM as a warm shutdown: the running job finishes its
current checkpoint interval); the HTTP server runs in a daemon thread beside it.
"""

from __future__ import annotations

import logging
import threading

from rq import Queue, Worker
from rq.serializers import JSONSerializer

from scalper_shared.runtime import build_service_app, configure_logging
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.settings import load_settings

from scalper_trainer.settings import TrainerSettings

SERVICE = "trainer"
TRAINING_QUEUE = "training"
logger = logging.getLogger(__name__)


def _serve_in_thread(app: object, host: str, port: int) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # RQ owns signals
    threading.Thread(target=server.run, name="health-http", daemon=True).start()


def main() -> None:
    settings = load_settings(TrainerSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    connections = connect(settings)
    _serve_in_thread(build_service_app(SERVICE, checks=connections.readiness_checks()),
                     settings.http_host, settings.http_port)
    queue = Queue(TRAINING_QUEUE, connection=connections.redis, serializer=JSONSerializer)
    worker = Worker([queue], connection=connections.redis, serializer=JSONSerializer)
    logger.info("trainer worker %s listening on queue %s", worker.name, TRAINING_QUEUE)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
