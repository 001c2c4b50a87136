"""Walk-forward evaluation: train on window A, test on the window right after it, roll forward.

:func:`walk_forward_folds` splits a date range into folds of ``train_days`` trading days followed
by ``test_days`` test days (the next fold starts ``step_days`` later; default: ``test_days``, so the
test windows tile the range). :meth:`Fold.train_config` gives the fold's ``TrainConfig`` (its test
window is the held-out validation window), for the trainer's ``TrainingRun``. Training is not done
here: :func:`evaluate_walk_forward` takes one trained policy per fold and evaluates each on its
own test window only, so every day in the combined result is out of sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from scalper_shared.core.calendar import trading_days
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env import EnvConfig, EpisodeSet
from scalper_trainer.evaluation.engine import EvaluationResult, evaluate
from scalper_trainer.evaluation.metrics import daily_pnl, performance
from scalper_trainer.evaluation.policies import Policy


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    train_from: date
    train_to: date
    test_from: date
    test_to: date

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """``base`` trained on this fold's train window, validated on its test window."""
        return base.model_copy(update={"train_from": self.train_from, "train_to": self.train_to,
                                       "validation_from": self.test_from, "validation_to": self.test_to})


def walk_forward_folds(start: date, end: date, *, train_days: int, test_days: int,
                       step_days: int | None = None) -> list[Fold]:
    """Folds over the trading days of ``start..end``; a last partial test window is dropped."""
    if train_days < 1 or test_days < 1:
        raise ValueError("train_days and test_days must be at least 1")
    step = step_days or test_days
    days = [d.day for d in trading_days(start, end)]
    folds: list[Fold] = []
    first = 0
    while first + train_days + test_days <= len(days):
        train, test = days[first:first + train_days], days[first + train_days:first + train_days + test_days]
        folds.append(Fold(len(folds), train[0], train[-1], test[0], test[-1]))
        first += step
    return folds


def evaluate_walk_forward(folds: Sequence[Fold], policies: Sequence[Policy],
                          episodes_for: Callable[[date, date], EpisodeSet], env_config: EnvConfig, *,
                          seed: int = 0) -> dict[str, Any]:
    """Each fold's policy on its test window; per-fold metrics and the combined out-of-sample ones."""
    if len(folds) != len(policies):
        raise ValueError(f"{len(folds)} folds but {len(policies)} policies")
    per_fold, combined, pnls = [], [], []
    for fold, policy in zip(folds, policies, strict=True):
        result: EvaluationResult = evaluate(policy, episodes_for(fold.test_from, fold.test_to), env_config,
                                            seed=seed + fold.index)
        days, daily = daily_pnl(result)
        trades = [t.pnl for t in result.trades]
        per_fold.append({"fold": fold.index, "train": [str(fold.train_from), str(fold.train_to)],
                         "test": [str(fold.test_from), str(fold.test_to)], "policy": result.policy,
                         "performance": performance(daily, trades)})
        combined.extend(daily.tolist())
        pnls.extend(trades)
    return {"folds": per_fold, "out_of_sample": performance(np.array(combined), pnls)}
