"""The training job: MaskablePPO on the vectorised environment, with checkpoints and diagnostics.

:func:`run_training_job` is the RQ entry (queue ``training``, JSON serializer: its one argument is
the ``TrainConfig`` as a dict). :class:`TrainingRun` does the work and can be driven without RQ:

- it resumes from the job's newest checkpoint (a retried job continues its step count);
- :class:`TrainingCallback` writes a checkpoint at every step of ``config.checkpoint_steps()``,
  computes the diagnostics (``diagnostics.py``) on the fixed validation set there, logs them with
  PPO's statistics and the reward terms to TensorBoard (``diagnostics/*``, ``reward/*``,
  ``train/*``), saves progress (steps, steps/s, ETA) to the job status every few seconds and stops
  cooperatively when the cancel flag is set;
- at the end it writes the artifact directory and the job's single ``models`` row.

torch and sb3 are imported with this module, which the worker imports once before forking jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import torch  # noqa: F401  (imported once per worker: the work-horses inherit it)
from sb3_contrib import MaskablePPO
from sqlalchemy import Engine
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from scalper_shared.db.training import load_diagnostics
from scalper_shared.runtime.rq_jobs import JobPreempted, preempt_flag_key
from scalper_shared.schema.training import Diagnostics, JobState, Progress, TrainConfig, cancel_flag_key
from scalper_trainer.checkpoints import CheckpointStore
from scalper_trainer.config import maskable_ppo_kwargs
from scalper_trainer.diagnostics import (
    RewardTermTally,
    UpdateLog,
    play_validation,
    ppo_stats,
    summarise,
    warnings_of,
)
from scalper_trainer.env.bundle import EnvBundle, EnvFactory
from scalper_trainer.export import export_numpy_policy
from scalper_trainer.normalise import observation_stats
from scalper_trainer.registry import (
    Manifest,
    model_id_for_job,
    record_diagnostics,
    register_model,
    write_artifacts,
)

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0
CANCEL_CHECK_EVERY_S = 1.0


class JobStatus(Protocol):
    """Where a run reports: the RQ job (``meta`` + ``save_meta``) or a stand-in in tests."""

    meta: dict[str, Any]

    def save_meta(self) -> None: ...


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class RunResult:
    state: JobState
    steps: int
    model_id: str | None = None
    artifact_path: str | None = None
    diagnostics: list[Diagnostics] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "steps": self.steps, "model_id": self.model_id,
                "artifact_path": self.artifact_path,
                "diagnostics": [d.model_dump(mode="json") for d in self.diagnostics]}


class TrainingRun:
    """One attempt at one job; a later attempt of the same job resumes where this one stopped."""

    def __init__(self, config: TrainConfig, job_id: str, *, artifacts_dir: Path, engine: Engine,
                 env_factory: EnvFactory, status: JobStatus, cancel: CancelFlag,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic, checkpoints_keep: int = 3,
                 checkpoints_budget_bytes: int | None = 512 * 2**20,
                 on_diagnostics: Callable[[Diagnostics], None] | None = None, register: bool = True) -> None:
        """``on_diagnostics`` sees every checkpoint's diagnostics once stored (a study's trial reports
        them to Optuna and may set the cancel flag to prune); ``register=False`` writes the artifact
        directory but no ``models`` row (a study registers only its best trial's model)."""
        self.config, self.job_id = config, job_id
        self.on_diagnostics, self.register = on_diagnostics, register
        self.artifacts_dir, self.engine = artifacts_dir, engine
        self.env_factory, self.status, self.cancel = env_factory, status, cancel
        self.clock, self.monotonic = clock, monotonic
        self.job_dir = artifacts_dir / "jobs" / job_id
        self.checkpoints = CheckpointStore(self.job_dir / "checkpoints", keep=checkpoints_keep,
                                           budget_bytes=checkpoints_budget_bytes)
        self.diagnostics: list[Diagnostics] = load_diagnostics(engine, job_id)
        self.updates = UpdateLog()
        self.train_terms = RewardTermTally()
        self.device: str | None = None

    def run(self) -> RunResult:
        envs = self.env_factory(self.config, self.engine)
        try:
            model = self._model(envs.train)
            self._diagnose_if_missing(model, envs)
            callback = TrainingCallback(self, envs)
            remaining = self.config.total_timesteps - model.num_timesteps
            if remaining > 0 and not self.cancel.is_set():
                model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False,
                            tb_log_name="ppo", progress_bar=False)
            if self.cancel.is_set() and model.num_timesteps < self.config.total_timesteps:
                if getattr(self.cancel, "preempted", lambda: False)():
                    self._preempted(model)
                return self._cancelled(model)
            return self._finish(model, callback.steps_per_second())
        finally:
            envs.close()

    def _model(self, train_env: VecEnv) -> MaskablePPO:
        latest = self.checkpoints.latest()
        stats = None
        if self.config.ppo.normalize_observations:
            tape = getattr(train_env, "tape", None)
            if tape is None:
                raise ValueError("observation standardisation needs the batched training env (its tape of bars)")
            stats = observation_stats(tape.episodes.features)
        kwargs = maskable_ppo_kwargs(self.config, stats)
        self.device = kwargs["device"]
        if latest is None:
            logger.info("job %s: new model, %d steps to go", self.job_id, self.config.total_timesteps)
            return MaskablePPO("MlpPolicy", train_env, tensorboard_log=str(self.job_dir / "tensorboard"),
                               verbose=0, **kwargs)
        logger.info("job %s: resuming from checkpoint %s at step %d", self.job_id, latest.path, latest.step)
        self.report(steps=latest.step, rate=0.0, state=JobState.RUNNING)
        return MaskablePPO.load(latest.path, env=train_env, device=kwargs["device"],
                                tensorboard_log=str(self.job_dir / "tensorboard"))

    def _diagnose_if_missing(self, model: MaskablePPO, envs: EnvBundle) -> None:
        """A checkpoint whose diagnostics were lost to a crash gets them now."""
        latest = self.checkpoints.latest()
        if latest is not None and latest.step not in {d.step for d in self.diagnostics}:
            self.diagnose(model, envs, latest.step)

    def checkpoint(self, model: MaskablePPO, envs: EnvBundle, step: int) -> Diagnostics:
        self.checkpoints.save(model, step)
        return self.diagnose(model, envs, step)

    def diagnose(self, model: MaskablePPO, envs: EnvBundle, step: int) -> Diagnostics:
        """The checkpoint's diagnostics on the fixed validation set; stored, logged, in the job status."""
        trace, result = play_validation(export_numpy_policy(model), envs.validation, envs.env_config,
                                        seed=self.config.seed)
        ppo = self.config.ppo
        stats = ppo_stats(self.updates.history, step, self.config.n_envs, ppo.n_steps, ppo.batch_size, ppo.n_epochs,
                          start_learning_rate=ppo.learning_rate)
        previous = [d for d in self.diagnostics if d.step < step]
        summary = summarise(step, trace, result, stats, self.train_terms.means_and_reset(), previous)
        record_diagnostics(self.engine, self.job_id, summary)
        self.diagnostics = sorted([d for d in self.diagnostics if d.step != step] + [summary], key=lambda d: d.step)
        for message in warnings_of([summary]):
            logger.warning("job %s step %d: %s", self.job_id, step, message)
        logger.info("job %s step %d: %s", self.job_id, step, headline(summary))
        self.status.meta["diagnostics"] = [d.model_dump(mode="json") for d in self.diagnostics]
        self.status.meta["warnings"] = warnings_of(self.diagnostics)
        self.status.save_meta()
        if self.on_diagnostics is not None:
            self.on_diagnostics(summary)
        return summary

    def report(self, *, steps: int, rate: float, state: JobState) -> None:
        remaining = max(self.config.total_timesteps - steps, 0)
        progress = Progress(steps=steps, total_steps=self.config.total_timesteps, steps_per_second=rate,
                            eta_seconds=remaining / rate if rate > 0 else None, updated_at=self.clock())
        self.status.meta["progress"] = progress.model_dump(mode="json")
        self.status.meta["state"] = state.value
        self.status.save_meta()

    def _cancelled(self, model: MaskablePPO) -> RunResult:
        self.checkpoints.save(model, model.num_timesteps)
        self.report(steps=model.num_timesteps, rate=0.0, state=JobState.CANCELLED)
        logger.info("job %s cancelled at step %d", self.job_id, model.num_timesteps)
        return RunResult(JobState.CANCELLED, model.num_timesteps, diagnostics=self.diagnostics)

    def _preempted(self, model: MaskablePPO) -> None:
        """The worker is shutting down: checkpoint, say so in the status, give the job back to RQ."""
        self.checkpoints.save(model, model.num_timesteps)
        warning = (f"{self.clock().isoformat(timespec='seconds')}: worker stopped at step {model.num_timesteps}; "
                   "checkpointed and re-queued to resume")
        self.status.meta["warnings"] = [*self.status.meta.get("warnings", []), warning]
        self.report(steps=model.num_timesteps, rate=0.0, state=JobState.QUEUED)
        logger.warning("job %s preempted at step %d", self.job_id, model.num_timesteps)
        raise JobPreempted(warning)

    def _finish(self, model: MaskablePPO, steps_per_second: float) -> RunResult:
        model_id = model_id_for_job(self.job_id)
        manifest = Manifest(model_id, self.job_id, self.clock(), self.config,
                            self._metrics(model.num_timesteps, steps_per_second), device=str(model.device))
        path = write_artifacts(self.artifacts_dir, model, manifest)
        registered = register_model(self.engine, manifest, path) if self.register else None
        self.status.meta["model_id"] = registered
        self.report(steps=model.num_timesteps, rate=steps_per_second, state=JobState.FINISHED)
        return RunResult(JobState.FINISHED, model.num_timesteps, registered, str(path), self.diagnostics)

    def _metrics(self, steps: int, steps_per_second: float) -> dict[str, Any]:
        last = self.diagnostics[-1].model_dump(mode="json") if self.diagnostics else None
        return {"steps": steps, "steps_per_second": round(steps_per_second, 1), "device": self.device,
                "final_diagnostics": last, "warnings": warnings_of(self.diagnostics),
                "collapse_warning": any(d.collapse_warning for d in self.diagnostics)}


class TrainingCallback(BaseCallback):
    """Checkpoints + diagnostics on schedule, periodic progress, cooperative cancel, exact stop."""

    def __init__(self, run: TrainingRun, envs: EnvBundle) -> None:
        super().__init__()
        self.run, self.envs = run, envs
        self.schedule = run.config.checkpoint_steps()
        self._started_at = run.monotonic()
        self._start_steps = 0
        self._last_progress = self._last_cancel_check = float("-inf")
        self._done: set[int] = set()

    def _on_training_start(self) -> None:
        self._start_steps = self.num_timesteps
        self._done = {s for s in self.schedule if s <= self.num_timesteps}

    def _on_rollout_start(self) -> None:
        """SB3 still holds the previous update's ``train/*`` values here (they are dumped later)."""
        self.run.updates.capture(self.model.logger.name_to_value)

    def _on_training_end(self) -> None:
        self.run.updates.capture(self.model.logger.name_to_value)

    def steps_per_second(self) -> float:
        elapsed = self.run.monotonic() - self._started_at
        return (self.num_timesteps - self._start_steps) / elapsed if elapsed > 0 else 0.0

    def _on_step(self) -> bool:
        self.run.train_terms.add_infos(self.locals.get("infos", ()))
        due = [s for s in self.schedule if s <= self.num_timesteps and s not in self._done]
        if due:  # progress first, so a status showing this checkpoint's diagnostics shows its step too
            self.run.report(steps=self.num_timesteps, rate=self.steps_per_second(), state=JobState.RUNNING)
            self._checkpoint(self.num_timesteps)
            self._done.update(due)
            self._last_cancel_check = float("-inf")  # a checkpoint is the natural place to stop
        now = self.run.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.run.report(steps=self.num_timesteps, rate=self.steps_per_second(), state=JobState.RUNNING)
        if now - self._last_cancel_check >= CANCEL_CHECK_EVERY_S:
            self._last_cancel_check = now
            if self.run.cancel.is_set():
                logger.info("job %s: cancel requested at step %d", self.run.job_id, self.num_timesteps)
                return False
        return self.num_timesteps < self.run.config.total_timesteps

    def _checkpoint(self, step: int) -> None:
        model = self.model
        assert isinstance(model, MaskablePPO), f"the training callback runs on MaskablePPO, not {type(model)}"
        self.run.updates.capture(model.logger.name_to_value)
        summary = self.run.checkpoint(model, self.envs, step)
        for name, value in tensorboard_scalars(summary).items():
            self.logger.record(name, value)
        self.logger.dump(step)


def tensorboard_scalars(summary: Diagnostics) -> dict[str, float]:
    """``diagnostics/*`` (behaviour on the validation set, PPO's statistics), ``reward/validation/*``
    and ``reward/train/*`` (each reward term's mean per step)."""
    scalars: dict[str, float] = {}
    for name, value in summary.model_dump(exclude={"step", "ppo", "reward_terms", "train_reward_terms",
                                                   "seed_criteria"}).items():
        if value is not None:
            scalars[f"diagnostics/{name}"] = float(value)
    for name, value in summary.ppo.model_dump().items():
        if value is not None:
            scalars[f"diagnostics/ppo_{name}"] = float(value)
    for name, passed in summary.seed_criteria.items():
        scalars[f"diagnostics/seed_{name}"] = float(passed)
    for source, terms in (("validation", summary.reward_terms), ("train", summary.train_reward_terms)):
        for name, value in terms.items():
            scalars[f"reward/{source}/{name}"] = float(value)
    return scalars


def headline(d: Diagnostics) -> str:
    """One log line: the figures that tell whether the policy learns."""
    def f(value: float | None, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    return (f"updates {d.ppo.updates} approx_kl {f(d.ppo.approx_kl, '.2e')} | decision steps {d.decision_steps}: "
            f"P(hold) {f(d.hold_share)} P(buy) {f(d.buy_share)} entropy {f(d.entropy)} | setup buy "
            f"{f(d.setup_buy_rate)} non-setup {f(d.nonsetup_buy_rate)} | {d.trades_per_account_day:.1f} trades "
            f"and ${d.pnl_per_account_day:,.0f} per account-day")


class RedisCancelFlag:
    """The cooperative cancel flag the API sets (``cancel_flag_key(job_id)``)."""

    def __init__(self, redis: Any, job_id: str) -> None:
        self.redis, self.key, self.job_id = redis, cancel_flag_key(job_id), job_id

    def is_set(self) -> bool:
        """Cancelled by the API, or preempted by the worker's shutdown."""
        return bool(self.redis.exists(self.key, preempt_flag_key(self.job_id)))

    def preempted(self) -> bool:
        return bool(self.redis.exists(preempt_flag_key(self.job_id)))


def run_training_job(config: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: train ``config`` (a ``TrainConfig`` as JSON) as the current job."""
    from rq import get_current_job

    from scalper_shared.db import make_engine
    from scalper_shared.settings import load_settings
    from scalper_trainer.env.bundle import default_env_factory
    from scalper_trainer.settings import TrainerSettings

    job = get_current_job()
    if job is None:
        raise RuntimeError("run_training_job must run inside an RQ job")
    settings = load_settings(TrainerSettings)
    train_config = TrainConfig.model_validate(config)
    engine = make_engine(settings.database_url)
    try:
        run = TrainingRun(train_config, job.id, artifacts_dir=settings.artifacts_dir, engine=engine,
                          env_factory=default_env_factory, status=job,
                          cancel=RedisCancelFlag(job.connection, job.id), checkpoints_keep=settings.checkpoint_keep,
                          checkpoints_budget_bytes=settings.checkpoint_budget_mb * 2**20)
        return run.run().to_json()
    finally:
        job.connection.delete(preempt_flag_key(job.id))  # this attempt's stop request (if any) is served
        engine.dispose()
