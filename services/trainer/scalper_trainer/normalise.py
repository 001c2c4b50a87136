"""Standardised observations: each input of the policy network over its mean and standard deviation
on the job's training days, fixed when the job starts.

The raw features differ in scale by two orders of magnitude (``docs/features.md``): the anchors
(``dist_vwap``, ``dist_high_of_day``, ``dist_low_of_day``, ``opening_range_pos``) have standard
deviations of 3-7 and means of up to +-8.5, the returns 0.3-1.2, so in a plain MLP the anchors
dominate the first layer's pre-activations and saturate its tanh units. :class:`StandardisedFlatten`
is SB3's flatten extractor followed by ``(x - mean) / std``; the statistics are buffers of the
network, so checkpoints carry them and a resumed job keeps them. The export folds them into the first
linear layer (:func:`fold_into_first_layer`), so the exported :class:`NumpyPolicy`, the policy
service and the feature service read the raw observation exactly as before (same spec hash).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from scalper_shared.core.features.spec import FEATURE_SPEC

MIN_STD = 1e-3
"""A feature (almost) constant on the training days is centred, not blown up."""


def observation_stats(market_features: npt.ArrayLike) -> tuple[list[float], list[float]]:
    """Mean and std of every flattened observation input ((window x features), row-major) from the
    training bars' market features (n_bars, n_market). The position features (side, unrealised P&L)
    keep mean 0 and std 1: they are already in [-1, 5] and flat most of the time."""
    values = np.asarray(market_features, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != FEATURE_SPEC.n_market or len(values) == 0:
        raise ValueError(f"market features must be (n_bars > 0, {FEATURE_SPEC.n_market}), got {values.shape}")
    n_position = FEATURE_SPEC.n_features - FEATURE_SPEC.n_market
    mean = np.concatenate([values.mean(axis=0), np.zeros(n_position)])
    std = np.concatenate([np.maximum(values.std(axis=0), MIN_STD), np.ones(n_position)])
    return np.tile(mean, FEATURE_SPEC.window).tolist(), np.tile(std, FEATURE_SPEC.window).tolist()


class StandardisedFlatten(BaseFeaturesExtractor):
    """Flatten, then ``(x - mean) / std`` with fixed per-input statistics (buffers, saved with the model)."""

    def __init__(self, observation_space: Any, mean: list[float], std: list[float]) -> None:
        size = int(np.prod(observation_space.shape))
        if len(mean) != size or len(std) != size:
            raise ValueError(f"observation statistics must have {size} entries, got {len(mean)} and {len(std)}")
        super().__init__(observation_space, features_dim=size)
        self.flatten = nn.Flatten()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return (self.flatten(observations) - self.mean) / self.std


def fold_into_first_layer(weight: np.ndarray, bias: np.ndarray, mean: np.ndarray,
                          std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W ((x - mean) / std) + b`` as ``W' x + b'`` (``weight`` is (inputs, outputs), as NumpyPolicy keeps it)."""
    folded = weight / std[:, None]
    return folded, bias - mean @ folded
