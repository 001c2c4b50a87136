"""Evaluation API types: the request the policy API enqueues and the trainer's worker runs.

Both sides agree here on the queue, the job function and the statuses of an ``evaluations`` row.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.schema.training import KNOWN_SYMBOLS

EVALUATION_QUEUE = "evaluation"
EVALUATION_JOB_FUNC = "scalper_trainer.evaluation.jobs.run_evaluation_job"


class EvaluationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class EvaluationRequest(BaseModel):
    """Evaluate ``model_id`` on the trading days ``start..end`` (inclusive), every symbol-day once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    start: date
    end: date
    symbols: tuple[str, ...] | None = Field(None, description="Default: the model's training symbols")
    seed: int = Field(0, ge=0, description="Seeds the random baseline and the bootstrap")
    data_source: Literal["database", "synthetic"] = "database"
    data_seed: int = Field(0, ge=0, description="Seed of the synthetic market (synthetic source only)")
    data_edge: Literal["none", "momentum"] = Field(
        "none", description="Planted edge of the synthetic market (synthetic source only); "
                            "'momentum' adds the edge_rule baseline")
    checkpoints: bool = Field(True, description="Compare the training checkpoints' action distributions")
    premium: PremiumModelConfig | None = Field(None, description="Premium model for the prices (default: the model's own)")
    fills: Literal["model", "real"] = Field(
        "model", description="real: fills from stored real option bars where they exist (database source)")

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            unknown = [s for s in value if s not in KNOWN_SYMBOLS]
            if unknown or not value:
                raise ValueError(f"unknown or no symbol(s) {unknown}; known: {list(KNOWN_SYMBOLS)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> EvaluationRequest:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.data_edge != "none" and self.data_source != "synthetic":
            raise ValueError(f"data_edge {self.data_edge!r} exists only with data_source 'synthetic'")
        return self


class EvaluationAccepted(BaseModel):
    """``POST /v1/evaluations`` answer (202)."""

    id: str
    status: EvaluationStatus
    status_url: str


class EvaluationView(BaseModel):
    """``GET /v1/evaluations/{id}``: the row, with the metrics once finished."""

    id: str
    model_id: str
    status: EvaluationStatus
    request: dict[str, Any]
    progress: float
    stage: str
    summary: str | None = None
    metrics: dict[str, Any] | None = None
    report_url: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
