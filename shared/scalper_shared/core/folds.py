"""Walk-forward folds over a date range: train on one block of trading days, test on the next.

:func:`walk_forward_folds` splits a date range into folds of ``train_days`` trading days followed
by ``test_days`` test days (the next fold starts ``step_days`` later; default: ``test_days``, so the
test windows tile the range). :func:`equal_block_folds` is the studies' layout: the trading days cut
into ``K + 1`` equal blocks, fold ``k`` trains on block ``k`` and is validated on block ``k + 1``.
:meth:`Fold.train_config` gives a fold's ``TrainConfig`` (its test window is the held-out
validation window). The evaluation side lives in ``scalper_trainer.evaluation.walkforward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from pydantic import BaseModel

from scalper_shared.core.calendar import trading_days

Config = TypeVar("Config", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    train_from: date
    train_to: date
    test_from: date
    test_to: date

    def train_config(self, base: Config) -> Config:
        """``base`` (a ``TrainConfig``) trained on this fold's train window, validated on its test window."""
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


def equal_block_folds(start: date, end: date, k: int) -> list[Fold]:
    """``k`` folds over ``start..end``: ``k + 1`` equal blocks of trading days (a remainder of fewer
    than ``k + 1`` days at the end is left out); fold ``i`` trains on block ``i``, tests on ``i + 1``."""
    if k < 1:
        raise ValueError("a study needs at least one fold")
    n_days = len(trading_days(start, end))
    block = n_days // (k + 1)
    if block < 1:
        raise ValueError(f"{start}..{end} has {n_days} trading days: too few for {k} folds "
                         f"({k + 1} blocks of at least one day)")
    return walk_forward_folds(start, end, train_days=block, test_days=block)[:k]
