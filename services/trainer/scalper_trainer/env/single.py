"""One trading environment as a plain ``gymnasium.Env`` (the reference; passes SB3's ``check_env``).

It runs the vectorised core with a single row, so its rules are the VecEnv's rules. Episode draws
use gymnasium's ``np_random``: seeded with ``seed + i`` it plays the same episodes as environment
``i`` of a :class:`~scalper_trainer.env.vec.ScalperVecEnv` seeded with ``seed``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from scalper_shared.core.rewards import REWARD_TERMS
from scalper_trainer.env.config import DEFAULT_ENV_CONFIG, EnvConfig
from scalper_trainer.env.core import MarketTape, TradingBatch
from scalper_trainer.env.episodes import EpisodeSet
from scalper_trainer.env.spaces import action_space, observation_space

_ONE = np.zeros(1, dtype=np.int64)


class TradingEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    """A symbol-session of 0DTE scalping: observation 20 x 23, six actions, ``action_masks()``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, episodes: EpisodeSet | MarketTape, config: EnvConfig = DEFAULT_ENV_CONFIG) -> None:
        self.config = config
        self.tape = episodes if isinstance(episodes, MarketTape) else MarketTape(episodes, config)
        self.observation_space = observation_space()  # type: ignore[assignment]
        self.action_space = action_space()
        self._batch = TradingBatch(self.tape, config, 1)
        self._started = time.monotonic()

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        episode, start = self.tape.draw(self.np_random)
        self._batch.start(_ONE, np.array([episode]), np.array([start]))
        self._batch.refresh_masks()
        return self._batch.observations()[0], {}

    def step(self, action: Any) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        result = self._batch.step(np.asarray([action], dtype=np.int64))
        self._batch.refresh_masks()
        info: dict[str, Any] = {}
        if self.config.step_reward_terms:
            info["reward_terms"] = {name: float(result.terms[name][0]) for name in REWARD_TERMS}
        if result.replaced[0]:
            info["action_replaced"] = True
        terminated = bool(result.terminated[0])
        if terminated:
            info.update(self._batch.episode_summary(0))
            info["episode"]["t"] = round(time.monotonic() - self._started, 6)
        return self._batch.observations()[0], float(result.reward[0]), terminated, False, info

    def action_masks(self) -> npt.NDArray[np.bool_]:
        """The (6,) mask of the current bar (sb3-contrib's ``ActionMasker`` and MaskablePPO read it)."""
        return self._batch.masks[0].copy()

    @property
    def state(self) -> TradingBatch:
        """The underlying one-row state (tests and diagnostics)."""
        return self._batch
