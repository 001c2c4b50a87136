"""Entrypoint: settings, logging and connections, then the consumers, the reconciler and the API."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import Engine

from scalper_execution.api import install_routes
from scalper_execution.brokers.alpaca import AlpacaBroker
from scalper_execution.brokers.base import BrokerError
from scalper_execution.brokers.paper import PaperBroker, PaperBrokerConfig
from scalper_execution.engine import ExecutionConfig, ExecutionEngine
from scalper_execution.live import LiveTradingRefused, start_live_broker
from scalper_execution.reconcile import reconcile_at_start
from scalper_execution.served import PromotedModelSource
from scalper_execution.service import ExecutionService, StreamPublisher
from scalper_execution.settings import ExecutionSettings
from scalper_execution.store import Store
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.clock import Clock, SystemClock, uuid_ids
from scalper_shared.core.calendar import session_date
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.db import migrate
from scalper_shared.runtime import build_service_app, configure_logging, serve
from scalper_shared.runtime.api_security import install_api_security
from scalper_shared.runtime.app import ThreadWorker
from scalper_shared.runtime.bootstrap import Connections, connect
from scalper_shared.schema import streams
from scalper_shared.settings import SettingsError, load_settings

SERVICE = "execution"
logger = logging.getLogger(__name__)


def build_service(settings: ExecutionSettings, clock: Clock | None = None,
                  monotonic: Callable[[], float] = time.monotonic, connections: Connections | None = None,
                  ) -> tuple[ExecutionService, list[ThreadWorker], dict]:
    """The service, its background workers (two consumers and the reconciler) and readiness checks.
    ``clock`` and ``monotonic``: the system's unless given (a paper replay passes its replay clock's);
    ``connections``: made from the settings unless given."""
    connections = connections or connect(settings)
    database = connections.engine
    migrate(database)
    clock = clock or SystemClock()
    live = start_live(settings, database, clock) if settings.broker == "alpaca" else None
    contracts = live.config.max_contracts_per_entry if live is not None else None  # None: the risk config's
    config = ExecutionConfig(contracts, RateLimit.parse(settings.order_rate_limit),
                             decision_tolerance=timedelta(minutes=settings.decision_tolerance_minutes),
                             clock_allowance=timedelta(seconds=settings.bar_clock_allowance_s),
                             allow_risk_mismatch=settings.allow_model_risk_mismatch)
    engine = ExecutionEngine(settings.risk, settings.premium, clock, monotonic, config,
                             served=PromotedModelSource(database))
    broker = live or PaperBroker(database, engine.quote_option, clock, settings.premium,
                                 PaperBrokerConfig(deterministic=settings.paper_deterministic,
                                                   latency_ms=settings.paper_latency_ms,
                                                   slippage_ticks=settings.paper_slippage_ticks))
    producers = {name: StreamProducer(connections.redis, name, maxlen=settings.stream_maxlen,
                                      prefix=settings.stream_prefix)
                 for name in streams.produced_by(SERVICE)}
    publisher = StreamPublisher(producers[streams.ORDERS_EVENTS], producers[streams.POSITIONS_STATE], clock,
                                uuid_ids)
    service = ExecutionService(engine, Store(database), broker, publisher, clock, uuid_ids,
                               bar_wait_s=settings.decision_bar_wait_ms / 1000)
    service.restore()
    if live is not None:
        reconcile_at_start(service)  # HALTED with the reason on any mismatch with the broker
    else:
        service.reconcile()
    consumer_config = ConsumerConfig.from_settings(settings)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    workers = [
        ConsumerRunner(connections.redis, streams.MD_BARS, streams.group_of(SERVICE, streams.MD_BARS), consumer,
                       service.handle_bars, config=consumer_config, prefix=settings.stream_prefix).as_worker(),
        ConsumerRunner(connections.redis, streams.POLICY_DECISIONS, streams.group_of(SERVICE, streams.POLICY_DECISIONS),
                       consumer, service.handle_decisions, config=consumer_config,
                       prefix=settings.stream_prefix).as_worker(),
        ThreadWorker("reconciler", lambda stop: service.run_reconciler(settings.reconcile_interval_ms / 1000, stop)),
    ]
    return service, workers, connections.readiness_checks()


def start_live(settings: ExecutionSettings, database: Engine, clock: Clock) -> AlpacaBroker:
    """The Alpaca broker, or exit naming the live-trading switch that is off (docs/execution.md)."""
    try:
        return start_live_broker(settings, database, session_date(clock.now()))
    except (LiveTradingRefused, BrokerError) as exc:
        raise SettingsError(f"EXECUTION_BROKER=alpaca refused: {exc}") from exc


def build_app(settings: ExecutionSettings) -> FastAPI:
    service, workers, checks = build_service(settings)
    app = build_service_app(SERVICE, checks=checks, workers=workers, docs=settings.api_docs_enabled)
    install_routes(app, service, install_api_security(app, settings))
    return app


def main() -> None:
    settings = load_settings(ExecutionSettings)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    serve(build_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
