"""Observation and action spaces shared by the single env and the VecEnv."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from scalper_shared.core.actions import N_ACTIONS
from scalper_shared.core.features import FEATURE_SPEC


def observation_space() -> spaces.Box:
    """Box(20, 23) float32 bounded by each feature's clip range (zero padding lies inside)."""
    low = np.array([f.low for f in FEATURE_SPEC.features], dtype=np.float32)
    high = np.array([f.high for f in FEATURE_SPEC.features], dtype=np.float32)
    shape = (FEATURE_SPEC.window, FEATURE_SPEC.n_features)
    return spaces.Box(np.broadcast_to(low, shape).copy(), np.broadcast_to(high, shape).copy(), shape,
                      dtype=np.float32)


def action_space() -> spaces.Discrete:
    return spaces.Discrete(N_ACTIONS)
