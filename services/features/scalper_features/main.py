"""Entrypoint: settings, logging and connections, then the service app until SIGTERM.

Any number of replicas may run for one symbol universe (``FEATURES_SYMBOLS``; the md.bars group comes
from the stream registry): they compete for the universe's Redis lease (``features:lease:<group>``);
the holder consumes ``md.bars`` and runs the :class:`FeaturePipeline`, the others stand by and take
over within ``FEATURES_LEASE_TTL_MS`` when it stops renewing. Workers: the lease keeper, the md.bars
consumer (reads only while this replica owns the lease) and the flusher of expired minutes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis
from fastapi import FastAPI
from sqlalchemy import Engine

from scalper_features import metrics
from scalper_features.pipeline import FeaturePipeline
from scalper_features.repository import FenceLost
from scalper_features.settings import FeaturesSettings
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.bus.lease import Lease
from scalper_shared.clock import Clock, SystemClock
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db import migrate
from scalper_shared.runtime import build_service_app, configure_logging, serve
from scalper_shared.runtime.app import ThreadWorker
from scalper_shared.runtime.bootstrap import Connections, connect
from scalper_shared.schema import streams
from scalper_shared.settings import load_settings

SERVICE = "features"
LEASE_KEY = "features:lease:"
logger = logging.getLogger(__name__)


class Ownership:
    """Keeps this replica's lease and hands the pipeline the fence on each acquisition."""

    def __init__(self, lease: Lease, pipeline: FeaturePipeline) -> None:
        self.lease = lease
        self.pipeline = pipeline
        self._owned = threading.Event()

    @property
    def owned(self) -> bool:
        return self._owned.is_set()

    def keep(self) -> None:
        """One renewal step: acquire, renew, or notice the loss."""
        try:
            fence = self.lease.hold()
        except redis.RedisError as exc:
            logger.warning("lease %s unreachable (%s): standing by", self.lease.key, exc)
            fence = None
        if fence is not None and not self.owned:
            try:
                self.pipeline.take_ownership(fence, self.lease.owner)
            except FenceLost as lost:  # e.g. Redis restarted without its token counter
                if lost.stored is not None:
                    self.lease.raise_token_floor(lost.stored)
                raise
            self._owned.set()
            metrics.OWNER.set(1)
        elif fence is None and self.owned:
            self._owned.clear()
            self.pipeline.drop_ownership()
            metrics.OWNER.set(0)

    def run(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                self.keep()
            except Exception:
                logger.exception("taking the lease %s failed; giving it up and retrying", self.lease.key)
                self._give_up()
            stop_event.wait(self.lease.ttl_ms / 3000)
        self._give_up()

    def _give_up(self) -> None:
        if self.owned:
            self._owned.clear()
            self.pipeline.drop_ownership()
            metrics.OWNER.set(0)
        try:
            self.lease.release()
        except redis.RedisError:
            logger.warning("could not release lease %s; it expires in %s ms", self.lease.key, self.lease.ttl_ms)
            self.lease.fence = None


def replica_workers(settings: FeaturesSettings, client: redis.Redis, engine: Engine, replica: str,
                    clock: Clock | None = None,
                    monotonic: Callable[[], float] = time.monotonic) -> tuple[list[ThreadWorker], Ownership]:
    """The workers of one replica (lease keeper, consumer, flusher) on the given connections. ``clock``
    and ``monotonic`` (the minute wait): the system's unless given (a paper replay passes its replay clock's)."""
    group = streams.group_of(SERVICE, streams.MD_BARS)
    producer = StreamProducer(client, streams.FEATURES_VECTORS, maxlen=settings.stream_maxlen,
                              prefix=settings.stream_prefix)
    pipeline = FeaturePipeline(settings.symbol_list, engine, producer, clock or SystemClock(),
                               wait_s=settings.minute_wait_s, universe=group, monotonic=monotonic)
    lease = Lease(client, settings.stream_prefix + LEASE_KEY + group, replica, settings.lease_ttl_ms)
    ownership = Ownership(lease, pipeline)
    runner = ConsumerRunner(client, streams.MD_BARS, group, replica, pipeline.handle,
                            config=ConsumerConfig.from_settings(settings), prefix=settings.stream_prefix,
                            gate=lambda: ownership.owned)
    workers = [ThreadWorker("features:lease", ownership.run), runner.as_worker(),
               ThreadWorker("features:flusher", lambda stop: pipeline.run_flusher(stop, active=lambda: ownership.owned))]
    return workers, ownership


def prepared_replica(settings: FeaturesSettings, connections: Connections, replica: str, clock: Clock | None = None,
                     monotonic: Callable[[], float] = time.monotonic) -> tuple[list[ThreadWorker], Ownership]:
    """Migrate, record the feature spec hash for the policy, then :func:`replica_workers`."""
    migrate(connections.engine)
    connections.redis.set(settings.stream_prefix + streams.FEATURE_SPEC_HASH_KEY, FEATURE_SPEC.spec_hash)
    return replica_workers(settings, connections.redis, connections.engine, replica, clock, monotonic)


def build_app(settings: FeaturesSettings) -> FastAPI:
    """The service app with its workers (started by the app, not here)."""
    connections = connect(settings)
    workers, _ = prepared_replica(settings, connections, f"{socket.gethostname()}-{os.getpid()}-features")
    logger.info("features service for %s (group %s): waiting for the universe's lease", settings.symbols,
                streams.group_of(SERVICE, streams.MD_BARS))
    return build_service_app(SERVICE, checks=connections.readiness_checks(), workers=workers)


def main() -> None:
    settings = load_settings(FeaturesSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    serve(build_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
