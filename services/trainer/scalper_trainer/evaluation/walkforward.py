"""Walk-forward evaluation: train on window A, test on the window right after it, roll forward.

The folds (:class:`Fold`, :func:`walk_forward_folds`) live in ``scalper_shared.core.folds`` (the
policy API lays out a study's folds too). Training is not done here: :func:`evaluate_walk_forward`
takes one trained policy per fold and evaluates each on its own test window only, so every day in
the combined result is out of sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import numpy as np

from scalper_shared.core.folds import Fold, walk_forward_folds
from scalper_trainer.env import EnvConfig, EpisodeSet
from scalper_trainer.evaluation.engine import EvaluationResult, evaluate
from scalper_trainer.evaluation.metrics import daily_pnl, performance
from scalper_trainer.evaluation.policies import Policy

__all__ = ["Fold", "evaluate_walk_forward", "walk_forward_folds"]


def evaluate_walk_forward(folds: Sequence[Fold], policies: Sequence[Policy],
                          episodes_for: Callable[[date, date], EpisodeSet], env_config: EnvConfig, *,
                          seed: int = 0) -> dict[str, Any]:
    """Each fold's policy on its test window; per-fold metrics and the combined out-of-sample ones,
    with the out-of-sample account-days and their P&L (``days``, ``daily_pnl``) for paired statistics."""
    if len(folds) != len(policies):
        raise ValueError(f"{len(folds)} folds but {len(policies)} policies")
    per_fold: list[dict[str, Any]] = []
    combined: list[float] = []
    pnls: list[float] = []
    all_days: list[str] = []
    for fold, policy in zip(folds, policies, strict=True):
        result: EvaluationResult = evaluate(policy, episodes_for(fold.test_from, fold.test_to), env_config,
                                            seed=seed + fold.index)
        days, daily = daily_pnl(result)
        trades = [t.pnl for t in result.trades]
        per_fold.append({"fold": fold.index, "train": [str(fold.train_from), str(fold.train_to)],
                         "test": [str(fold.test_from), str(fold.test_to)], "policy": result.policy,
                         "performance": performance(daily, trades)})
        combined.extend(daily.tolist())
        all_days.extend(str(day) for day in days)
        pnls.extend(trades)
    return {"folds": per_fold, "out_of_sample": performance(np.array(combined), pnls), "days": all_days,
            "daily_pnl": combined}
