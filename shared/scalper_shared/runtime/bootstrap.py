"""Connections every service opens at start, built from its settings, and their readiness checks."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine, create_engine

from scalper_shared.runtime.app import ReadinessCheck
from scalper_shared.runtime.checks import database_check, redis_check
from scalper_shared.settings import ServiceSettings


@dataclass(frozen=True)
class Connections:
    redis: redis.Redis
    engine: Engine

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"redis": redis_check(self.redis), "database": database_check(self.engine)}


def connect(settings: ServiceSettings) -> Connections:
    """Clients only; nothing is contacted until first use (readiness probes, workers)."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                  health_check_interval=30)
    engine = create_engine(settings.database_url, pool_pre_ping=True, future=True)
    return Connections(redis=client, engine=engine)
