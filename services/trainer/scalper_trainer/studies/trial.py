"""One trial of a study as one RQ job on the ``training`` queue (``run_trial_job(name, slot)``).

The job of trial slot ``slot``:

1. under a PostgreSQL advisory lock on the slot, finds the slot's trial or asks Optuna for a new
   one (a retried job finds the same trial; a trial that already ended is not run again);
2. takes the trial's parameters (sampled once; a resumed trial gets its stored values back) and
   builds one TrainConfig per walk-forward fold (train on block k, validate on block k + 1);
3. trains each fold with the worker's own :class:`~scalper_trainer.jobs.TrainingRun` under the run
   id ``<job id>-fold<k>`` (checkpoints, diagnostics rows, resume after a killed worker). Every
   checkpoint's validation P&L per account-day is reported to Optuna at step
   ``k x timesteps + checkpoint step``; when the MedianPruner says so, the run stops at that
   checkpoint and the trial is told PRUNED;
4. plays every fold's final policy and the baselines on the fold's validation block
   (:func:`~scalper_trainer.evaluation.walkforward.evaluate_walk_forward`): the objective is the mean
   after-cost P&L per account-day over all validation days; the trial's attributes keep the
   per-fold figures, the baselines with paired bootstrap intervals, the seed criteria, the setup-BUY
   rate, trades per day and the reward audit's Spearman rank correlation;
5. tells Optuna the value. An exception on the last attempt marks the trial FAIL with the error;
   earlier attempts are retried by RQ and continue the same trial from its checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from sqlalchemy import Engine

from scalper_shared import studies
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.db.training import load_diagnostics
from scalper_shared.runtime.rq_jobs import JobPreempted
from scalper_shared.schema.studies import StudyRequest, fold_job_id
from scalper_shared.schema.training import Diagnostics, JobState, TrainConfig
from scalper_trainer.env import EpisodeSet
from scalper_trainer.env.bundle import EnvFactory, default_env_factory, env_config_for, episodes_for
from scalper_trainer.evaluation.audit import audit_reward
from scalper_trainer.evaluation.policies import AgentPolicy, baseline_policies
from scalper_trainer.evaluation.significance import bootstrap_mean_difference_ci
from scalper_trainer.evaluation.walkforward import evaluate_walk_forward
from scalper_trainer.jobs import CancelFlag, JobStatus, RunResult, TrainingRun
from scalper_trainer.registry import POLICY_FILE

logger = logging.getLogger(__name__)

PRUNING_VALUE = "pnl_per_account_day"
"""The Diagnostics field reported to Optuna at every checkpoint (validation P&L per account-day)."""


class PruneOrCancel:
    """The run's cancel flag: set by the pruner, or by the API's cooperative cancel."""

    def __init__(self, cancel: CancelFlag) -> None:
        self.cancel, self.pruned = cancel, False

    def is_set(self) -> bool:
        return self.pruned or self.cancel.is_set()

    def preempted(self) -> bool:
        """The worker is shutting down: the fold checkpoints and the trial goes on in the next attempt."""
        return bool(getattr(self.cancel, "preempted", lambda: False)())


def reported_step(fold: int, config: TrainConfig, step: int) -> int:
    """The step Optuna sees: the fold's offset plus the checkpoint's scheduled step (a run reaches a
    milestone at the first multiple of its rollout past it; every trial reports the milestone)."""
    reached = [s for s in config.checkpoint_steps() if s <= step]
    return fold * config.total_timesteps + (reached[-1] if reached else step)


@dataclass
class TrialContext:
    """Where a trial runs: the database, artifacts, the environment factory and the job status."""

    database_url: str
    engine: Engine
    artifacts_dir: Path
    job_id: str
    status: JobStatus
    cancel: CancelFlag
    env_factory: EnvFactory = default_env_factory
    retries_left: Callable[[], int] = lambda: 0


def run_trial(name: str, slot: int, ctx: TrialContext) -> dict[str, Any]:
    """Run (or continue) trial slot ``slot`` of study ``name``; returns its end state and value."""
    storage = studies.open_storage(ctx.database_url)
    study = studies.load(storage, name, slot=slot)
    if study is None:
        raise ValueError(f"no study {name!r}")
    request = studies.request_of(study)
    assert request.space is not None
    with studies.slot_lock(ctx.database_url, storage.get_study_id_from_name(name), slot):
        existing = studies.trial_of_slot(study, slot)
        if existing is not None and existing.state.is_finished():
            logger.info("study %s slot %d: trial %d already %s, nothing to run", name, slot, existing.number,
                        existing.state.name)
            return {"trial": existing.number, "state": existing.state.name, "value": existing.value, "ran": False}
        if existing is None:
            trial = study.ask()
            trial.set_user_attr(studies.SLOT_ATTR, slot)
            trial.set_user_attr(studies.JOB_ATTR, ctx.job_id)
            logger.info("study %s slot %d: new trial %d", name, slot, trial.number)
        else:
            trial = optuna.Trial(study, existing._trial_id)
            logger.info("study %s slot %d: resuming trial %d", name, slot, trial.number)
        values = studies.suggest(trial, request.space)
    ctx.status.meta.update({"study": name, "trial": trial.number, "slot": slot})
    ctx.status.save_meta()
    try:
        return TrialRun(study, trial, request, values, ctx).run()
    except JobPreempted:
        raise  # re-queued by the stopping worker: the same trial goes on, whatever its retries
    except Exception as error:
        if ctx.retries_left() <= 0:
            logger.exception("study %s trial %d failed on its last attempt", name, trial.number)
            _fail(study, trial, f"{type(error).__name__}: {error}")
        raise


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("error", reason[:2000])
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


class TrialRun:
    def __init__(self, study: optuna.Study, trial: optuna.Trial, request: StudyRequest, values: dict[str, Any],
                 ctx: TrialContext) -> None:
        self.study, self.trial, self.request, self.values, self.ctx = study, trial, request, values, ctx

    def run(self) -> dict[str, Any]:
        try:
            configs = self.request.fold_configs(self.values)
        except ValueError as error:  # e.g. a minibatch larger than the rollout: the trial is infeasible
            _fail(self.study, self.trial, f"invalid parameters: {error}")
            return self._end(TrialState.FAIL)
        results: list[RunResult] = []
        for fold, config in enumerate(configs):
            result = self._train_fold(fold, config)
            if result is None:
                self.study.tell(self.trial, state=TrialState.PRUNED, skip_if_finished=True)
                return self._end(TrialState.PRUNED)
            if result.state is not JobState.FINISHED:
                _fail(self.study, self.trial, f"fold {fold} ended {result.state.value} (cancelled)")
                return self._end(TrialState.FAIL)
            results.append(result)
        attrs = self._walk_forward(configs, results)
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)
        value = float(attrs["walk_forward"]["mean_daily_pnl"])
        self.study.tell(self.trial, value, skip_if_finished=True)
        logger.info("study %s trial %d complete: %.2f per account-day", self.study.study_name, self.trial.number,
                    value)
        return self._end(TrialState.COMPLETE, value)

    def _end(self, state: TrialState, value: float | None = None) -> dict[str, Any]:
        if value is None:
            value = next((t.value for t in self.study.get_trials(deepcopy=False) if t.number == self.trial.number), None)
        return {"trial": self.trial.number, "state": state.name, "value": value, "ran": True}

    def _report(self, fold: int, config: TrainConfig, diagnostics: Diagnostics) -> bool:
        """Report one checkpoint; True when the pruner says stop."""
        value = getattr(diagnostics, PRUNING_VALUE)
        self.trial.report(float(value), reported_step(fold, config, diagnostics.step))
        return self.request.pruner.enabled and self.trial.should_prune()

    def _train_fold(self, fold: int, config: TrainConfig) -> RunResult | None:
        """Train one fold (resuming its checkpoints); None when the trial is pruned."""
        run_id = fold_job_id(self.ctx.job_id, fold)
        stored = load_diagnostics(self.ctx.engine, run_id)
        if any([self._report(fold, config, d) for d in stored]):  # a resumed fold re-reports what it had
            logger.info("study %s trial %d pruned on resuming fold %d at step %d (below the median of trials "
                        "that ended meanwhile)", self.study.study_name, self.trial.number, fold, stored[-1].step)
            return None
        flag = PruneOrCancel(self.ctx.cancel)

        def observe(diagnostics: Diagnostics) -> None:
            if self._report(fold, config, diagnostics):
                logger.info("study %s trial %d pruned in fold %d at step %d", self.study.study_name,
                            self.trial.number, fold, diagnostics.step)
                flag.pruned = True

        self.ctx.status.meta.update({"fold": fold, "diagnostics": []})  # the job status shows this fold's
        self.ctx.status.save_meta()
        run = TrainingRun(config, run_id, artifacts_dir=self.ctx.artifacts_dir, engine=self.ctx.engine,
                          env_factory=self.ctx.env_factory, status=self.ctx.status, cancel=flag,
                          on_diagnostics=observe, register=False)
        result = run.run()
        return None if flag.pruned else result

    def _walk_forward(self, configs: list[TrainConfig], results: list[RunResult]) -> dict[str, Any]:
        """The objective and the trial's attributes: every fold's final policy on its validation block."""
        folds = self.request.fold_windows()
        cache: dict[tuple[date, date], EpisodeSet] = {}

        def episodes(start: date, end: date) -> EpisodeSet:
            if (start, end) not in cache:
                cache[start, end] = episodes_for(configs[0], self.ctx.engine, start, end)
            return cache[start, end]

        env_config = env_config_for(configs[0])
        policies = [AgentPolicy(NumpyPolicy.load(Path(str(r.artifact_path)) / POLICY_FILE)) for r in results]
        seed = self.request.seed
        agent = evaluate_walk_forward(folds, policies, episodes, env_config, seed=seed)
        mine = np.asarray(agent["daily_pnl"], dtype=np.float64)
        own = bootstrap_mean_difference_ci(mine, np.zeros_like(mine), seed=seed)
        baselines: dict[str, Any] = {}
        for policy in baseline_policies(configs[0].data_edge):
            theirs = evaluate_walk_forward(folds, [policy] * len(folds), episodes, env_config, seed=seed)
            interval = bootstrap_mean_difference_ci(mine, np.asarray(theirs["daily_pnl"]), seed=seed)
            baselines[policy.name] = {
                "mean_daily_pnl": theirs["out_of_sample"]["mean_daily_pnl"],
                "per_fold": [f["performance"]["mean_daily_pnl"] for f in theirs["folds"]],
                "mean_daily_difference": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
                "confidence": interval.confidence, "ci_includes_zero": interval.includes_zero}
        finals = [r.diagnostics[-1] for r in results]
        audits = [audit_reward(episodes(f.test_from, f.test_to), configs[0].reward, env_config=env_config,
                               seed=seed).spearman for f in folds]
        known = [a for a in audits if a is not None]
        days = len(agent["days"])
        return {
            "walk_forward": {
                "mean_daily_pnl": agent["out_of_sample"]["mean_daily_pnl"], "days": days,
                "ci_low": own.low, "ci_high": own.high, "confidence": own.confidence,
                "performance": agent["out_of_sample"], "per_fold": agent["folds"],
                "daily": [[day, pnl] for day, pnl in zip(agent["days"], agent["daily_pnl"], strict=True)]},
            "baselines": baselines,
            "seed_criteria": {name: all(d.seed_criteria.get(name, False) for d in finals)
                              for name in finals[0].seed_criteria},
            "setup_buy_rate": _mean([d.setup_buy_rate for d in finals]),
            "trades_per_day": agent["out_of_sample"]["trades"] / days if days else 0.0,
            "reward_spearman": float(np.mean(known)) if known else None,
            "reward_spearman_per_fold": audits,
            "fold_runs": [fold_job_id(self.ctx.job_id, k) for k in range(len(results))],
            "artifacts": [str(r.artifact_path) for r in results],
        }


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def run_trial_job(name: str, slot: int) -> dict[str, Any]:
    """RQ entry point: trial slot ``slot`` of study ``name`` as the current job."""
    from rq import get_current_job

    from scalper_shared.db import make_engine
    from scalper_shared.settings import load_settings
    from scalper_trainer.jobs import RedisCancelFlag
    from scalper_trainer.settings import TrainerSettings

    job = get_current_job()
    if job is None:
        raise RuntimeError("run_trial_job must run inside an RQ job")
    settings = load_settings(TrainerSettings)
    engine = make_engine(settings.database_url)
    try:
        ctx = TrialContext(database_url=settings.database_url, engine=engine, artifacts_dir=settings.artifacts_dir,
                           job_id=job.id, status=job, cancel=RedisCancelFlag(job.connection, job.id),
                           retries_left=lambda: int(job.retries_left or 0))
        return run_trial(name, slot, ctx)
    finally:
        engine.dispose()
