"""What each service really produces to and consumes from, recorded while its app is built, is
exactly what the stream registry says (the producer and runner guards also hold every use to it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from scalper_shared.bus import ConsumerRunner, StreamProducer
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.schema import streams

pytestmark = pytest.mark.integration


@dataclass
class Uses:
    produced: set[str] = field(default_factory=set)
    consumed: set[tuple[str, str]] = field(default_factory=set)


@pytest.fixture
def uses(monkeypatch: pytest.MonkeyPatch) -> Uses:
    """Records the stream of every StreamProducer and the (stream, group) of every ConsumerRunner built."""
    recorded = Uses()
    producer_init, runner_init = StreamProducer.__init__, ConsumerRunner.__init__

    def record_producer(self: StreamProducer, client: Any, stream: str, **kwargs: Any) -> None:
        recorded.produced.add(stream)
        producer_init(self, client, stream, **kwargs)

    def record_runner(self: ConsumerRunner, client: Any, stream: str, group: str, *args: Any, **kwargs: Any) -> None:
        recorded.consumed.add((stream, group))
        runner_init(self, client, stream, group, *args, **kwargs)

    monkeypatch.setattr(StreamProducer, "__init__", record_producer)
    monkeypatch.setattr(ConsumerRunner, "__init__", record_runner)
    return recorded


def _ingestion(**urls: str) -> FastAPI:
    from scalper_ingestion.main import build_app
    from scalper_ingestion.settings import IngestionSettings

    return build_app(IngestionSettings(**urls))


def _features(**urls: str) -> FastAPI:
    from scalper_features.main import build_app
    from scalper_features.settings import FeaturesSettings

    return build_app(FeaturesSettings(**urls))


def _policy(**urls: str) -> FastAPI:
    from scalper_policy.app import build_policy_app
    from scalper_policy.settings import PolicySettings

    settings = PolicySettings(**urls)
    return build_policy_app(settings, connect(settings))


def _execution(**urls: str) -> FastAPI:
    from scalper_execution.main import build_app
    from scalper_execution.settings import ExecutionSettings

    return build_app(ExecutionSettings(**urls))


SERVICES: dict[str, Callable[..., FastAPI]] = {
    "ingestion": _ingestion, "features": _features, "policy": _policy, "execution": _execution}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_uses_exactly_its_registered_streams_and_groups(
        service: str, uses: Uses, migrated_database_url: str, redis_url: str, stream_prefix: str) -> None:
    SERVICES[service](database_url=migrated_database_url, redis_url=redis_url, stream_prefix=stream_prefix)
    assert uses.produced == set(streams.produced_by(service))
    assert uses.consumed == set(streams.consumed_by(service))


def test_every_registered_stream_and_group_is_used_by_its_service() -> None:
    assert {s.producer for s in streams.REGISTRY.values()} <= set(SERVICES)
    assert {g.service for s in streams.REGISTRY.values() for g in s.groups} <= set(SERVICES)
