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


class Performance(BaseModel):
    """One policy's P&L figures over the window, after costs (dollars)."""

    model_config = ConfigDict(frozen=True)

    total_pnl: float
    mean_daily_pnl: float
    trades: int
    win_rate: float | None = Field(description="Share of trades with a positive P&L; None without trades")
    profit_factor: float | None = Field(description="Gross wins / gross losses; None without a loss")
    max_drawdown: float = Field(description="Largest peak-to-trough fall of the daily equity curve")
    daily_sharpe: float | None
    annualised_sharpe: float | None
    probabilistic_sharpe_ratio: float | None = Field(description="P(true Sharpe > 0), Bailey & Lopez de Prado")
    winning_days: int
    losing_days: int


class TradesPerDay(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean_per_day: float
    min_per_day: float
    max_per_day: float
    mean_per_symbol_day: float
    target_band: tuple[float, float]
    in_target_band: bool


class BaselineComparison(BaseModel):
    """Agent minus one baseline: paired bootstrap interval of the mean daily P&L difference."""

    model_config = ConfigDict(frozen=True)

    baseline_total_pnl: float
    mean_daily_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    ci_includes_zero: bool


class Significance(BaseModel):
    """The agent against every baseline (``vs``); the top-level figures are against the best one."""

    model_config = ConfigDict(frozen=True)

    best_baseline: str | None
    best_baseline_total_pnl: float | None = None
    mean_daily_difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    ci_includes_zero: bool | None = None
    days: int = 0
    method: str | None = None
    vs: dict[str, BaselineComparison] = Field(default_factory=dict)


class RealFillCounts(BaseModel):
    """``fills real``: how many of a policy's fills were priced from stored option bars."""

    model_config = ConfigDict(frozen=True)

    fills: int
    real: int
    model: int
    real_share: float | None


class FillSummary(BaseModel):
    """Where the fill prices came from: the premium model, or real option bars (counts per policy name)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    mode: Literal["model", "real"]
    option_bars: int = 0

    def of(self, policy: str) -> RealFillCounts | None:
        """The counts of ``policy`` (``agent`` or a baseline's name) in ``real`` mode."""
        counts = (self.model_extra or {}).get(policy)
        return None if counts is None else RealFillCounts.model_validate(counts)


class EvaluationWindow(BaseModel):
    """The evaluated window (its other keys stay JSON)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    days: int = Field(description="Trading days evaluated")


class ActionStability(BaseModel):
    """The agent's action distribution over the window (its other keys stay JSON)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    action_shares: dict[str, float] = Field(description="Share of each action's name among the steps taken")


class EvaluationMetrics(BaseModel):
    """``metrics.json`` (and ``GET /v1/evaluations/{id}`` ``metrics``): the sections read by programs
    are typed; the report's other sections (trades, price days, stop loss, rotation, stability, ...)
    stay JSON under their names."""

    model_config = ConfigDict(frozen=True, extra="allow")

    summary: str = Field(description="The verdict in one sentence")
    performance: Performance
    trades_per_day: TradesPerDay
    significance: Significance
    window: EvaluationWindow | None = None
    action_stability: ActionStability | None = None
    fills: FillSummary = FillSummary(mode="model")


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
    metrics: EvaluationMetrics | None = None
    report_url: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
