"""Study API types: a hyperparameter/reward study's request, its search space and its views.

A study is an Optuna study in the project's PostgreSQL (``scalper_shared.studies``); each trial is
one RQ job on the ``training`` queue (``STUDY_TRIAL_JOB_FUNC``), and a last job
(``STUDY_FINALISE_JOB_FUNC``, an RQ dependent of every trial job) registers the best trial's model
under the study's name and writes the report. This module holds only data (no Optuna): the policy
API, the worker and the CLI agree here on the request, the search space, the job ids and the views.

The search space (``docs/studies.md``; default ``scalper_shared/studies/default_space.yaml``) is a
list of parameters, each a dotted path into :class:`~scalper_shared.schema.training.TrainConfig`
(``ppo.learning_rate``, ``reward.hold_tax``, ``n_envs``) with its distribution: ``float`` or
``int`` between ``low`` and ``high`` (``log: true`` samples on a log scale, ``step`` quantises) or
``categorical`` over ``choices`` (any JSON values, e.g. ``[64, 64]`` for ``ppo.net_arch``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalper_shared.core.folds import Fold, equal_block_folds
from scalper_shared.core.rewards import RewardConfig
from scalper_shared.schema.presets import PPOConfig, get_preset
from scalper_shared.schema.training import KNOWN_SYMBOLS, MIN_CHECKPOINT_EVERY, TrainConfig

STUDY_TRIAL_JOB_FUNC = "scalper_trainer.studies.trial.run_trial_job"
STUDY_FINALISE_JOB_FUNC = "scalper_trainer.studies.finalise.run_finalise_job"
STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
OBJECTIVE = "mean after-cost walk-forward validation P&L per account-day (dollars)"
TRIAL_STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
MAX_WINDOW_DAYS = 3_660
"""A study's window is at most ten years (its folds are laid out day by day on the NYSE calendar)."""
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
_SECTIONS: dict[str, type[BaseModel]] = {"ppo": PPOConfig, "reward": RewardConfig}
_TOP_LEVEL = ("n_envs",)


class ParamSpec(BaseModel):
    """One searched parameter: a dotted TrainConfig path and its distribution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=80, description="ppo.<field>, reward.<field> or n_envs")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = Field(False, description="Sample on a log scale (low > 0)")
    step: float | None = Field(None, gt=0, description="Quantisation step (not with log)")
    choices: tuple[Any, ...] | None = Field(None, min_length=1, description="categorical: the JSON values")
    doc: str = Field("", max_length=500, description="Why this range")

    @field_validator("name")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name in _TOP_LEVEL:
            return name
        section, _, field = name.partition(".")
        model = _SECTIONS.get(section)
        if model is None or field not in model.model_fields:
            known = [*_TOP_LEVEL, *(f"{s}.{f}" for s, m in _SECTIONS.items() for f in m.model_fields)]
            raise ValueError(f"unknown parameter {name!r}; known: {known}")
        return name

    @model_validator(mode="after")
    def _distribution(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError(f"{self.name}: categorical takes choices, not low/high")
            return self
        if self.low is None or self.high is None or self.choices is not None:
            raise ValueError(f"{self.name}: {self.type} takes low and high, not choices")
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low {self.low} must be below high {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError(f"{self.name}: a log scale needs low > 0 and no step")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"{self.name}: int bounds must be whole numbers")
        return self


class SearchSpace(BaseModel):
    """The parameters a study searches; every other TrainConfig field comes from the preset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = Field("", max_length=2000)
    params: tuple[ParamSpec, ...] = Field(min_length=1, max_length=64)

    @field_validator("params")
    @classmethod
    def _unique(cls, params: tuple[ParamSpec, ...]) -> tuple[ParamSpec, ...]:
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"parameters repeat: {sorted({n for n in names if names.count(n) > 1})}")
        return params


def apply_params(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """``base`` with each dotted parameter set (``{"ppo.learning_rate": 1e-4, "n_envs": 8}``); the
    result is validated as a whole (a batch larger than the rollout is refused here)."""
    data = base.model_dump(mode="json")
    for name, value in values.items():
        section, _, field = name.partition(".")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return TrainConfig.model_validate(data)


class PrunerConfig(BaseModel):
    """Optuna's MedianPruner: a trial stops when its checkpoint's validation P&L per account-day is
    below the median of earlier trials' at the same step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    n_startup_trials: int = Field(2, ge=0, description="Trials that finish before any pruning")
    n_warmup_steps: int = Field(0, ge=0, description="Reported steps (fold x timesteps + step) before pruning")


class StudyRequest(BaseModel):
    """``POST /v1/studies``: search ``space`` around ``preset`` with ``trials`` trials of
    ``timesteps`` steps per fold, over ``folds`` walk-forward folds of ``start..end``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=STUDY_NAME_PATTERN, description="Unique study name; also the best model's name")
    preset: str = "default"
    trials: int = Field(ge=1, le=500)
    timesteps: int = Field(gt=0, le=10_000_000, description="Training steps of every fold of every trial")
    symbols: tuple[str, ...] = Field(("SPY", "QQQ"), min_length=1)
    start: date
    end: date
    folds: int = Field(2, ge=1, le=12)
    space: SearchSpace | None = Field(None, description="Default: the shipped default_space.yaml")
    seed: int = Field(0, ge=0, description="Seeds the sampler (per trial) and the training runs")
    data_source: Literal["database", "synthetic"] = "database"
    data_seed: int = Field(0, ge=0)
    checkpoint_every: int | None = Field(None, gt=0, description="Default: timesteps / 4, at least "
                                         f"{MIN_CHECKPOINT_EVERY} (the checkpoints are the pruning points)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    pruner: PrunerConfig = PrunerConfig()

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in KNOWN_SYMBOLS]
        if unknown or len(set(value)) != len(value):
            raise ValueError(f"unknown or repeated symbol(s) {list(value)}; known: {list(KNOWN_SYMBOLS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StudyRequest:
        get_preset(self.preset)
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.start < EARLIEST_DAY or self.end > LATEST_DAY:
            raise ValueError(f"the window {self.start}..{self.end} must lie within {EARLIEST_DAY}..{LATEST_DAY}")
        if (self.end - self.start).days > MAX_WINDOW_DAYS:
            raise ValueError(f"the window {self.start}..{self.end} is longer than {MAX_WINDOW_DAYS} days")
        self.fold_windows()  # enough trading days for the folds
        try:
            self.base_config()
        except ValidationError as error:
            raise ValueError(f"the preset and window make no valid TrainConfig: {error.errors()[0]['msg']}") from None
        return self

    def fold_windows(self) -> list[Fold]:
        return equal_block_folds(self.start, self.end, self.folds)

    def base_config(self) -> TrainConfig:
        """The first fold's TrainConfig before any searched parameter is applied."""
        fold = self.fold_windows()[0]
        return TrainConfig.model_validate({
            "preset": self.preset, "symbols": list(self.symbols), "train_from": fold.train_from,
            "train_to": fold.train_to, "validation_from": fold.test_from, "validation_to": fold.test_to,
            "data_source": self.data_source, "data_seed": self.data_seed, "total_timesteps": self.timesteps,
            "checkpoint_every": self.checkpoint_every or max(self.timesteps // 4, MIN_CHECKPOINT_EVERY),
            "seed": self.seed,
            "device": self.device})

    def fold_configs(self, values: dict[str, Any]) -> list[TrainConfig]:
        """The trial's TrainConfig of every fold (searched parameters applied)."""
        trial_config = apply_params(self.base_config(), values)
        return [fold.train_config(trial_config) for fold in self.fold_windows()]


def trial_job_id(name: str, slot: int, prefix: str = "") -> str:
    """The RQ job id of trial slot ``slot`` of study ``name`` (deterministic: enqueued once)."""
    return f"study-{_key(name, prefix)}-trial-{slot}"


def finalise_job_id(name: str, prefix: str = "") -> str:
    return f"study-{_key(name, prefix)}-finalise"


def fold_job_id(trial_job: str, fold: int) -> str:
    """The training-run id of one fold of a trial (its checkpoints, diagnostics and model id)."""
    return f"{trial_job}-fold{fold}"


def _key(name: str, prefix: str) -> str:
    return hashlib.sha256((prefix + name).encode()).hexdigest()[:16]


class TrialView(BaseModel):
    number: int
    slot: int | None = None
    state: str
    value: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    job_id: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict, description="Walk-forward figures and diagnostics")
    intermediate: dict[int, float] = Field(default_factory=dict, description="Step -> validation P&L per account-day")
    started_at: datetime | None = None
    completed_at: datetime | None = None


class StudyView(BaseModel):
    """``GET /v1/studies/{name}`` (``trials`` omitted in the list)."""

    name: str
    objective: str = OBJECTIVE
    direction: str = "maximize"
    request: dict[str, Any]
    trials_requested: int
    states: dict[str, int] = Field(description="Trials by Optuna state (slots not started yet are 'queued')")
    finished: bool = Field(description="Every trial slot ended (complete, pruned or failed)")
    best: TrialView | None = None
    best_model_id: str | None = None
    report: str | None = Field(None, description="Path of the HTML report once the study finished")
    trials: list[TrialView] = Field(default_factory=list)


class StudyAccepted(BaseModel):
    name: str
    trial_jobs: list[str]
    finalise_job: str
    status_url: str


def canonical(request: StudyRequest) -> str:
    return json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
