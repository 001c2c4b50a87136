"""A tiny trading environment with the real spaces (obs 20 x 23, six masked actions) for trainer tests.

Price follows a seeded random walk; BUY_CALL/BUY_PUT open a position (only when flat), EXIT/TRIM
close it, the reward is the position's P&L on close (also in ``info["pnl"]``). Episodes last
``length`` steps. Not a market model: it only exercises the training machinery.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from scalper_shared.core.actions import Action
from scalper_shared.schema.training import TrainConfig

OBS_SHAPE = (20, 23)


class TinyTradingEnv(gym.Env[np.ndarray, int]):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 40, seed: int = 0) -> None:
        self.observation_space = gym.spaces.Box(-50.0, 50.0, OBS_SHAPE, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(Action))
        self.length = length
        self._rng = np.random.default_rng(seed)
        self._t = 0
        self._side = 0
        self._entry = 0.0
        self._price = 100.0

    def action_masks(self) -> np.ndarray:
        flat = self._side == 0
        return np.array([True, flat, flat, not flat, not flat, not flat])

    def _obs(self) -> np.ndarray:
        obs = self._rng.normal(0.0, 1.0, OBS_SHAPE).astype(np.float32)
        obs[:, 21] = self._side
        obs[:, 22] = 0.0 if self._side == 0 else (self._price - self._entry) / self._entry
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t, self._side, self._entry, self._price = 0, 0, 0.0, 100.0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._price *= float(np.exp(self._rng.normal(0.0, 0.002)))
        pnl = 0.0
        if action in (Action.BUY_CALL, Action.BUY_PUT) and self._side == 0:
            self._side, self._entry = (1 if action == Action.BUY_CALL else -1), self._price
        elif action in (Action.TRIM_50, Action.TRIM_70, Action.EXIT) and self._side != 0:
            pnl = self._side * (self._price - self._entry) / self._entry * 10.0
            self._side = 0
        self._t += 1
        return self._obs(), pnl, self._t >= self.length, False, {"pnl": pnl}


def tiny_vec_env(n_envs: int, seed: int, length: int = 40) -> DummyVecEnv:
    return DummyVecEnv([lambda i=i: TinyTradingEnv(length, seed + i) for i in range(n_envs)])


@functools.cache
def _validation_tape() -> Any:
    from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes

    config = EnvConfig()
    return MarketTape(synthetic_episodes(date(2025, 7, 7), date(2025, 7, 8), seed=3, symbols=("SPY",)), config), config


def tiny_env_factory(config: TrainConfig, engine: Any = None) -> Any:
    """An ``EnvFactory``: tiny envs to train on; two synthetic SPY days (the real env) to validate on."""
    from scalper_trainer.env.bundle import EnvBundle

    tape, env_config = _validation_tape()
    return EnvBundle(train=tiny_vec_env(config.n_envs, config.seed), validation=tape, env_config=env_config)
