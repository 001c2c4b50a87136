"""Readiness checks for the dependencies services share."""

from __future__ import annotations

from typing import Any

from scalper_shared.runtime.app import ReadinessCheck


def redis_check(client: Any) -> ReadinessCheck:
    def check() -> None:
        client.ping()

    return check


def database_check(engine: Any) -> ReadinessCheck:
    from sqlalchemy import text

    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check
