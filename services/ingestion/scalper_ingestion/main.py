"""Entrypoint: settings, logging and connections, then the service app until SIGTERM.

With ``POLYGON_API_KEY`` set and ``INGESTION_LIVE=true`` a worker runs the Polygon websocket live
feed (validate -> upsert -> commit -> publish ``md.bars``); otherwise the service only serves
``/healthz``, ``/readyz`` and ``/metrics`` and publishes stored bars left in the outbox (backfills, file imports and replays are
``scalper ingest ...`` commands running the same core).
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI

from scalper_ingestion.live import live_worker_target
from scalper_ingestion.settings import IngestionSettings
from scalper_ingestion.writer import BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import SystemClock
from scalper_shared.db import migrate
from scalper_shared.runtime import build_service_app, configure_logging, serve
from scalper_shared.runtime.app import BackgroundWorker, ThreadWorker
from scalper_shared.runtime.bootstrap import Connections, connect
from scalper_shared.schema import streams
from scalper_shared.settings import load_settings

SERVICE = "ingestion"
logger = logging.getLogger(__name__)


def bar_writer(settings: IngestionSettings, connections: Connections) -> BarWriter:
    """The writer every ingestion path shares, publishing to ``md.bars`` under the stream prefix."""
    producer = StreamProducer(connections.redis, streams.MD_BARS, maxlen=settings.stream_maxlen,
                              prefix=settings.stream_prefix)
    return BarWriter(connections.engine, producer, clock=SystemClock(), rules=settings.quality_rules,
                     db_retry_s=settings.db_retry_s)


def outbox_worker(settings: IngestionSettings, connections: Connections) -> BackgroundWorker:
    """Publishes, every ``INGESTION_OUTBOX_INTERVAL_S``, stored bars whose publication failed or was cut
    off (Redis out of memory or restarting, an importer killed between commit and publish)."""
    writer = bar_writer(settings, connections)

    def run(stop: threading.Event) -> None:
        migrate(connections.engine)
        while not stop.wait(settings.outbox_interval_s):
            try:
                writer.drain(max_rows=100_000)
            except Exception as exc:  # noqa: BLE001 - the next round retries; the marks stay
                logger.warning("outbox publication failed, retrying in %ss: %s", settings.outbox_interval_s, exc)

    return ThreadWorker("ingestion:outbox", run)


def live_workers(settings: IngestionSettings, connections: Connections) -> list[BackgroundWorker]:
    """The live-feed worker when it is switched on and a key is set; none otherwise (logged why)."""
    if not settings.live:
        logger.info("live mode off (INGESTION_LIVE=false): serving health and metrics only")
        return []
    if not settings.polygon_api_key:
        logger.warning("INGESTION_LIVE=true but POLYGON_API_KEY is empty: live mode stays off")
        return []
    migrate(connections.engine)
    logger.info("live mode on for %s", settings.symbols)
    return [ThreadWorker("ingestion:live", live_worker_target(settings, bar_writer(settings, connections)))]


def build_app(settings: IngestionSettings) -> FastAPI:
    """The service app with its workers (started by the app, not here)."""
    connections = connect(settings)
    return build_service_app(SERVICE, checks=connections.readiness_checks(),
                             workers=[outbox_worker(settings, connections), *live_workers(settings, connections)])


def main() -> None:
    settings = load_settings(IngestionSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    serve(build_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
