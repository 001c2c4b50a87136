"""The reference setup the batched env is measured against: the textbook SB3 way.

``n_envs`` plain :class:`~scalper_trainer.env.single.TradingEnv` instances, each wrapped in
sb3-contrib's ``ActionMasker``, stepped one by one by a ``DummyVecEnv``. Same episodes, same seeds
(environment ``i`` seeded ``seed + i``), same rules; only the stepping differs.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.vec_env import DummyVecEnv

from scalper_trainer.env.config import DEFAULT_ENV_CONFIG, EnvConfig
from scalper_trainer.env.core import MarketTape
from scalper_trainer.env.episodes import EpisodeSet
from scalper_trainer.env.single import TradingEnv


def _mask_of(env: gym.Env) -> npt.NDArray[np.bool_]:
    assert isinstance(env, TradingEnv)
    return env.action_masks()


def make_reference_env(tape: MarketTape, config: EnvConfig = DEFAULT_ENV_CONFIG) -> ActionMasker:
    return ActionMasker(TradingEnv(tape, config), _mask_of)


def make_reference_vec_env(episodes: EpisodeSet | MarketTape, env_config: EnvConfig = DEFAULT_ENV_CONFIG,
                           n_envs: int = 64, seed: int | None = 0) -> DummyVecEnv:
    """``DummyVecEnv`` of ``n_envs`` ``ActionMasker(TradingEnv)``; environment ``i`` seeded ``seed + i``."""
    tape = episodes if isinstance(episodes, MarketTape) else MarketTape(episodes, env_config)
    vec = DummyVecEnv([lambda: make_reference_env(tape, env_config) for _ in range(n_envs)])
    if seed is not None:
        vec.seed(seed)
    return vec
