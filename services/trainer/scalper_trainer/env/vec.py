"""N trading environments stepped together in one vectorised call: an SB3 ``VecEnv``.

* ``step`` applies N actions with the core's numpy step; finished environments get their terminal
  observation in ``info["terminal_observation"]`` and restart at once (SB3's auto-reset contract).
* ``env_method("action_masks")`` returns the N masks from one array (sb3-contrib's
  ``get_action_masks`` stacks them), so MaskablePPO needs no wrapper.
* Environment ``i`` draws its episodes from its own generator, seeded ``seed + i``: the same
  sequence a :class:`~scalper_trainer.env.single.TradingEnv` seeded ``seed + i`` plays.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from scalper_shared.core.rewards import REWARD_TERMS
from scalper_trainer.env.config import DEFAULT_ENV_CONFIG, EnvConfig
from scalper_trainer.env.core import MarketTape, TradingBatch
from scalper_trainer.env.episodes import EpisodeSet
from scalper_trainer.env.spaces import action_space, observation_space

BULK_METHODS = ("action_masks",)


class ScalperVecEnv(VecEnv):
    """``n_envs`` trading environments over one shared :class:`MarketTape`."""

    render_mode = None

    def __init__(self, episodes: EpisodeSet | MarketTape, config: EnvConfig = DEFAULT_ENV_CONFIG,
                 n_envs: int = 64, seed: int | None = None) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        super().__init__(n_envs, observation_space(), action_space())
        self.config = config
        self.tape = episodes if isinstance(episodes, MarketTape) else MarketTape(episodes, config)
        self.batch = TradingBatch(self.tape, config, n_envs)
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self._started = time.monotonic()
        if seed is not None:
            self.seed(seed)

    # -- VecEnv API ----------------------------------------------------------------------------

    def reset(self) -> npt.NDArray[np.float32]:
        for env, seed in enumerate(self._seeds):
            if seed is not None or self._rngs[env] is None:
                self._rngs[env] = np_random(seed)[0]
        self._restart(np.arange(self.num_envs))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.batch.observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        result = self.batch.step(self._actions)
        infos = self._step_infos(result.terms, result.replaced)
        done = np.flatnonzero(result.terminated)
        if done.size:
            terminal = self.batch.observations(done)
            elapsed = round(time.monotonic() - self._started, 6)
            for k, env in enumerate(done.tolist()):
                info = infos[env]
                info.update(self.batch.episode_summary(env))
                info["episode"]["t"] = elapsed
                info["terminal_observation"] = terminal[k]
                info["TimeLimit.truncated"] = False
            self._restart(done)
        else:
            self.batch.refresh_masks()
        return (self.batch.observations(), result.reward.astype(np.float32), result.terminated.copy(), infos)

    def _step_infos(self, terms: dict[str, np.ndarray], replaced: np.ndarray) -> list[dict[str, Any]]:
        if not self.config.step_reward_terms:
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        else:
            rows = np.stack([terms[name] for name in REWARD_TERMS], axis=1).tolist()
            infos = [{"reward_terms": dict(zip(REWARD_TERMS, row, strict=True))} for row in rows]
        for env in np.flatnonzero(replaced).tolist():
            infos[env]["action_replaced"] = True
        return infos

    def _restart(self, envs: npt.NDArray[np.int64]) -> None:
        """Draw and start a new episode in each of ``envs`` (one draw pair per env from its own rng)."""
        draws = [self.tape.draw(self._rng(env)) for env in envs.tolist()]
        self.batch.start(envs, np.array([d[0] for d in draws], np.int64), np.array([d[1] for d in draws], np.int64))
        self.batch.refresh_masks()

    def _rng(self, env: int) -> np.random.Generator:
        rng = self._rngs[env]
        if rng is None:
            rng = self._rngs[env] = np_random(None)[0]
        return rng

    def action_masks(self) -> npt.NDArray[np.bool_]:
        """(n_envs, 6) masks of the current bars."""
        return self.batch.masks.copy()

    def close(self) -> None:
        """Nothing to release: the environments are arrays."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"the batched environments share their attributes; cannot set {attr_name!r}")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Per-environment results; ``action_masks`` comes from one array, one row per environment."""
        if method_name not in BULK_METHODS:
            raise AttributeError(f"ScalperVecEnv has no per-environment method {method_name!r}; "
                                 f"supported: {BULK_METHODS}")
        if method_name == "action_masks" and indices is None:
            return list(self.batch.masks)        # views of a fresh array: the hot path of MaskablePPO
        rows = getattr(self, method_name)(*method_args, **method_kwargs)
        return list(rows[list(self._get_indices(indices))])

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def make_vec_env(episodes: EpisodeSet | MarketTape, env_config: EnvConfig = DEFAULT_ENV_CONFIG,
                 n_envs: int = 64, seed: int | None = 0) -> ScalperVecEnv:
    """The batched training environment: ``n_envs`` environments, environment ``i`` seeded ``seed + i``."""
    return ScalperVecEnv(episodes, env_config, n_envs, seed)

