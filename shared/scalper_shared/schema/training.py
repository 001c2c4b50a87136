"""Training-job API types: the frozen ``TrainConfig`` saved with every model, and job/model views.

The policy API validates and enqueues a ``TrainConfig`` (it never imports torch); the trainer
worker runs it. Both sides agree here on the queue name, the job function, the deterministic job
id of an ``Idempotency-Key`` and the Redis key of the cooperative cancel flag.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.core.rewards import RewardConfig
from scalper_shared.core.risk import RiskConfig
from scalper_shared.schema.presets import DEFAULT_PRESET, PRESETS, PPOConfig, get_preset

__all__ = ["MILESTONE_STEPS", "PPOConfig", "PRESETS", "TrainConfig"]

TRAINING_QUEUE = "training"
TRAINING_JOB_FUNC = "scalper_trainer.jobs.run_training_job"
MILESTONE_STEPS: tuple[int, ...] = (5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000)
"""Steps at which a checkpoint (and its diagnostics) is always written, besides every N steps."""
KNOWN_SYMBOLS = ("SPY", "QQQ", "I:SPX")


MIN_CHECKPOINT_EVERY = 100
MAX_CHECKPOINTS = 1_000
"""A job checkpoints at most this often and this many times (a checkpoint with its diagnostics costs
seconds and megabytes; the trainer also keeps only the newest few on disk)."""


class TrainConfig(BaseModel):
    """One training job: data window, budget, seed, PPO and reward settings. Saved with the model.

    Training uses the trading days ``train_from..train_to`` (inclusive); diagnostics at every
    checkpoint use the held-out days ``validation_from..validation_to``, which must come after them.
    ``preset`` names a :mod:`~scalper_shared.schema.presets` entry: ``n_envs``, ``ppo`` and ``reward``
    default to its values, and a partial ``ppo`` or ``reward`` object overrides only the fields it
    gives.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = Field(DEFAULT_PRESET, description=f"Named preset filling n_envs, ppo and reward: {sorted(PRESETS)}")
    symbols: tuple[str, ...] = Field(("SPY", "QQQ"), min_length=1, description=(
        f"Underlyings whose sessions become episodes, each at most once; known: {', '.join(KNOWN_SYMBOLS)}"))
    train_from: date = Field(description="First trading day of the training window (inclusive)")
    train_to: date = Field(description="Last trading day of the training window (inclusive)")
    validation_from: date = Field(description=(
        "First held-out day of the checkpoint diagnostics; after `train_to`"))
    validation_to: date = Field(description="Last held-out day of the checkpoint diagnostics (inclusive)")
    data_source: Literal["database", "synthetic"] = Field(
        "database", description="Bars from the database (imported first), or the embedded synthetic market")
    data_seed: int = Field(0, ge=0, description="Seed of the synthetic market (synthetic source only)")
    data_edge: Literal["none", "momentum"] = Field(
        "none", description="Planted edge of the synthetic market (synthetic source only)")
    total_timesteps: int = Field(50_000, gt=0, le=100_000_000, description=(
        "Environment steps (one symbol-minute each) of the whole job. 50,000 is a smoke-sized run; "
        "the learning study ran 500k to 1M"))
    checkpoint_every: int = Field(25_000, ge=MIN_CHECKPOINT_EVERY,
                                  description="Checkpoint every N steps (plus milestones); at least "
                                              f"{MIN_CHECKPOINT_EVERY}, at most {MAX_CHECKPOINTS} checkpoints a job")
    seed: int = Field(0, ge=0, description=(
        "Seed of PPO (initial weights, action sampling) and of the environments' episode draws"))
    n_envs: int = Field(PRESETS[DEFAULT_PRESET].n_envs, gt=0, le=1024,
                        description="Environments stepped together by the batched env (default: the preset's)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when torch sees a GPU, else cpu; cuda without a GPU fails the job")
    ppo: PPOConfig = Field(PRESETS[DEFAULT_PRESET].ppo, description="PPO hyperparameters (default: the preset's)")
    reward: RewardConfig = Field(PRESETS[DEFAULT_PRESET].reward,
                                 description="Reward weights (default: the preset's)")
    premium: PremiumModelConfig = Field(PremiumModelConfig(),
                                        description="Option-premium model (`scalper premium calibrate` writes one)")
    risk: RiskConfig = Field(RiskConfig(), description=(
        "The risk-and-sizing config (stop, take-profit tiers, windows, cooldowns, account limits, contracts "
        "per entry): trained and evaluated under, and execution refuses the model when its own differs"))

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("preset", DEFAULT_PRESET)
        if not isinstance(name, str):
            return data  # the field's own validation reports the type
        preset = get_preset(name)
        filled = dict(data)
        filled.setdefault("n_envs", preset.n_envs)
        for key, base in (("ppo", preset.ppo), ("reward", preset.reward)):
            given = filled.get(key)
            if given is None:
                filled[key] = base
            elif isinstance(given, dict):
                filled[key] = {**base.model_dump(), **given}
        return filled

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in KNOWN_SYMBOLS]
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown}; known: {list(KNOWN_SYMBOLS)}")
        if len(set(value)) != len(value):
            raise ValueError(f"symbols repeat: {list(value)}")
        return value

    @model_validator(mode="after")
    def _batch_fits_the_rollout(self) -> TrainConfig:
        rollout = self.n_envs * self.ppo.n_steps
        if self.ppo.batch_size > rollout:
            raise ValueError(f"ppo.batch_size {self.ppo.batch_size} exceeds the rollout n_envs x n_steps = {rollout}")
        return self

    @model_validator(mode="after")
    def _bounded_checkpoints(self) -> TrainConfig:
        if self.total_timesteps // self.checkpoint_every > MAX_CHECKPOINTS:
            raise ValueError(f"checkpoint_every {self.checkpoint_every} makes more than {MAX_CHECKPOINTS} checkpoints "
                             f"of {self.total_timesteps} steps; use at least "
                             f"{-(-self.total_timesteps // MAX_CHECKPOINTS)}")
        return self

    @model_validator(mode="after")
    def _edge_is_synthetic(self) -> TrainConfig:
        if self.data_edge != "none" and self.data_source != "synthetic":
            raise ValueError(f"data_edge {self.data_edge!r} exists only with data_source 'synthetic'")
        return self

    @model_validator(mode="after")
    def _ordered_windows(self) -> TrainConfig:
        if self.train_from > self.train_to:
            raise ValueError(f"train_from {self.train_from} is after train_to {self.train_to}")
        if self.validation_from > self.validation_to:
            raise ValueError(f"validation_from {self.validation_from} is after validation_to {self.validation_to}")
        if self.validation_from <= self.train_to:
            raise ValueError(f"validation days must be held out: validation_from {self.validation_from}"
                             f" is not after train_to {self.train_to}")
        return self

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def checkpoint_steps(self) -> tuple[int, ...]:
        """Every step at which a checkpoint is written: each ``checkpoint_every``, milestones, the end."""
        every = range(self.checkpoint_every, self.total_timesteps + 1, self.checkpoint_every)
        milestones = (m for m in MILESTONE_STEPS if m <= self.total_timesteps)
        return tuple(sorted({*every, *milestones, self.total_timesteps}))


def job_id_for_key(idempotency_key: str, prefix: str = "") -> str:
    """The deterministic RQ job id of an ``Idempotency-Key`` (the same key -> the same job) within the
    stack of ``prefix`` (``STREAM_PREFIX``: stacks sharing a Redis database never share a job)."""
    return "train-" + hashlib.sha256((prefix + idempotency_key).encode()).hexdigest()[:32]


def cancel_flag_key(job_id: str) -> str:
    """Redis key the API sets to ask a running job to stop at its next callback."""
    return f"scalper:training:cancel:{job_id}"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SCHEDULED = "scheduled"


class Progress(BaseModel):
    """Where a running job is; saved in the RQ job's meta by the training callback."""

    steps: int = 0
    total_steps: int = 0
    steps_per_second: float = 0.0
    eta_seconds: float | None = None
    updated_at: datetime | None = None


SEED_CRITERIA = {"hold_share_at_most_35pct": ("hold_share", "<=", 0.35),
                 "buy_share_at_least_65pct": ("buy_share", ">=", 0.65),
                 "setup_buy_rate_at_least_80pct": ("setup_buy_rate", ">=", 0.80)}
"""The seed research run's three criteria, on the decision-step probabilities of :class:`Diagnostics`."""


class PPOStats(BaseModel):
    """PPO's own statistics (SB3's ``train/*`` logger values) at a checkpoint."""

    model_config = ConfigDict(frozen=True)

    updates: int = Field(description="PPO updates (train() calls) so far: one per rollout")
    gradient_steps: int = Field(description="Minibatch gradient steps so far")
    approx_kl: float | None = Field(None, description="Median approx_kl over the last 10 updates")
    clip_fraction: float | None = Field(None, description="Median clip fraction over the last 10 updates")
    explained_variance: float | None = Field(None, description="Of the last update")
    policy_gradient_loss: float | None = None
    value_loss: float | None = None
    entropy_loss: float | None = None
    learning_rate: float | None = Field(None, description="Adam step size of the last update (falls over the run "
                                        "under the default linear schedule)")
    learning_rate_share: float | None = Field(None, description="That step size over the run's starting one")


class Diagnostics(BaseModel):
    """How the policy behaves at one checkpoint, on the FIXED validation set (every validation
    symbol-day played once, the same at every checkpoint). Definitions: ``docs/diagnostics.md``.

    *Decision steps* are the steps where the agent really chooses: flat with an entry allowed (the
    mask admits BUY). Shares named ``*_share`` are mean policy probabilities over decision steps;
    ``sampled_*`` are shares of actions drawn from the policy (fixed seed); ``argmax_*`` are shares of
    the most probable action (how the deterministic agent plays).
    """

    model_config = ConfigDict(frozen=True)

    step: int
    ppo: PPOStats
    validation_steps: int = Field(description="Steps played on the validation set")
    decision_steps: int = Field(description="Of them, flat with an entry allowed")
    hold_share: float | None = Field(description="Mean P(HOLD) on decision steps")
    buy_call_share: float | None
    buy_put_share: float | None
    buy_share: float | None = Field(description="Mean P(BUY_CALL) + P(BUY_PUT) on decision steps")
    sampled_hold_share: float | None
    sampled_buy_share: float | None
    argmax_hold_share: float | None
    argmax_buy_share: float | None
    entropy: float | None = Field(description="Mean entropy (nats) of the policy on decision steps; max ln 3")
    setup_steps: int = Field(description="Decision steps where the strong-setup rule fires")
    setup_buy_rate: float | None = Field(description="Mean P(BUY) on setup decision steps")
    setup_direction_buy_rate: float | None = Field(description="Mean P(buy in the setup's direction) there")
    nonsetup_buy_rate: float | None = Field(description="Mean P(BUY) on decision steps without a setup")
    selectivity: float | None = Field(description="setup_buy_rate - nonsetup_buy_rate")
    position_steps: int = Field(description="Steps with a position open")
    trim_50_share: float | None = Field(description="Mean P(TRIM_50) with a position open")
    trim_70_share: float | None
    exit_share: float | None
    mean_holding_minutes: float | None
    symbol_days: int
    account_days: int
    trades_per_symbol_day: float
    trades_per_account_day: float
    pnl_per_symbol_day: float = Field(description="After-cost P&L (dollars) per symbol-day, deterministic play")
    pnl_per_account_day: float
    reward_terms: dict[str, float] = Field(description="Validation: each reward term's mean per step")
    train_reward_terms: dict[str, float] = Field(
        default_factory=dict, description="Training rollouts since the previous checkpoint: mean per step")
    seed_criteria: dict[str, bool] = Field(description="The seed run's criteria, pass/fail")
    collapse_warning: bool = False
    not_learning_warning: bool = False


class TrainingJobView(BaseModel):
    """``GET /v1/training-jobs/{id}``."""

    id: str
    state: JobState
    rq_status: str
    config: dict[str, Any] | None = None
    progress: Progress | None = None
    diagnostics: list[Diagnostics] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    model_id: str | None = None
    error: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    retries_left: int | None = None


class TrainingJobAccepted(BaseModel):
    """``POST /v1/training-jobs`` answer (202)."""

    id: str
    state: JobState
    status_url: str


class ModelView(BaseModel):
    """One row of the models registry."""

    id: str
    job_id: str
    created_at: datetime
    spec_hash: str
    train_from: date
    train_to: date
    validation_from: date
    validation_to: date
    total_timesteps: int
    metrics: dict[str, Any]
    config: dict[str, Any]
    artifact_path: str
    status: str
    promoted: bool
    name: str | None = None
