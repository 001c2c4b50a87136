"""Entrypoint: settings, logging and connections, then the service app until SIGTERM.

Workers: the md.bars consumer (its group from the stream registry) handing batches to the
:class:`FeaturePipeline`, and a flusher processing minutes whose wait expired. The database is
migrated and the state recovered before the consumer starts.
"""

from __future__ import annotations

import logging
import os
import socket

from fastapi import FastAPI

from scalper_features.pipeline import FeaturePipeline
from scalper_features.settings import FeaturesSettings
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.clock import SystemClock
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db import migrate
from scalper_shared.runtime import build_service_app, configure_logging, serve
from scalper_shared.runtime.app import ThreadWorker
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.schema import streams
from scalper_shared.settings import load_settings

SERVICE = "features"
logger = logging.getLogger(__name__)


def build_app(settings: FeaturesSettings) -> FastAPI:
    """The service app with its workers (started by the app, not here); the state is recovered first."""
    connections = connect(settings)
    migrate(connections.engine)
    producer = StreamProducer(connections.redis, streams.FEATURES_VECTORS, maxlen=settings.stream_maxlen,
                              prefix=settings.stream_prefix)
    pipeline = FeaturePipeline(settings.symbol_list, connections.engine, producer, SystemClock(),
                               wait_s=settings.minute_wait_s)
    pipeline.recover()
    connections.redis.set(settings.stream_prefix + streams.FEATURE_SPEC_HASH_KEY, FEATURE_SPEC.spec_hash)
    group = streams.group_of(SERVICE, streams.MD_BARS)
    runner = ConsumerRunner(connections.redis, streams.MD_BARS, group,
                            f"{socket.gethostname()}-{os.getpid()}-features", pipeline.handle,
                            config=ConsumerConfig.from_settings(settings), prefix=settings.stream_prefix)
    workers = [runner.as_worker(), ThreadWorker("features:flusher", pipeline.run_flusher)]
    logger.info("features service for %s (group %s)", settings.symbols, group)
    return build_service_app(SERVICE, checks=connections.readiness_checks(), workers=workers)


def main() -> None:
    settings = load_settings(FeaturesSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    serve(build_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
