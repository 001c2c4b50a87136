"""Tuning of a consumer runner; the defaults of every service come from ``ServiceSettings``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scalper_shared.settings import ServiceSettings


class ConsumerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(100, gt=0, le=10_000, description="Entries per XREADGROUP / XAUTOCLAIM")
    block_ms: int = Field(1000, ge=0, description="XREADGROUP BLOCK; also bounds the stop latency")
    claim_idle_ms: int = Field(30_000, gt=0, description="Reclaim pending entries idle this long")
    max_deliveries: int = Field(5, gt=0, description="Dead-letter an entry that failed this many deliveries "
                                                                 "(4x that when its holders only crashed)")
    claim_interval_ms: int | None = Field(None, gt=0,
                                          description="Reclaim cycle period; default min(claim_idle_ms, 5s)")
    metrics_interval_s: float = Field(5.0, gt=0, description="Refresh of the lag and pending gauges")
    reconnect_initial_s: float = Field(0.1, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    dead_letter_maxlen: int = Field(100_000, gt=0)

    @property
    def claim_interval_s(self) -> float:
        interval_ms = self.claim_interval_ms or min(self.claim_idle_ms, 5_000)
        return interval_ms / 1000

    @classmethod
    def from_settings(cls, settings: ServiceSettings, **overrides: object) -> ConsumerConfig:
        values: dict[str, object] = {
            "batch_size": settings.consumer_batch_size,
            "block_ms": settings.consumer_block_ms,
            "claim_idle_ms": settings.consumer_claim_idle_ms,
            "max_deliveries": settings.consumer_max_deliveries,
        }
        return cls.model_validate({**values, **overrides})
