"""The trading environment: episode data, one gymnasium env, the batched VecEnv, the reference setup.

Public interface for the training jobs::

    episodes = load_episodes(database_url, ["SPY", "QQQ"], start, end)   # or synthetic_episodes(...)
    vec_env = make_vec_env(episodes, EnvConfig(), n_envs=128, seed=0)
    model = MaskablePPO("MlpPolicy", vec_env, ...)

See docs/environment.md.
"""

from scalper_trainer.env.config import DEFAULT_ENV_CONFIG, EnvConfig, EpisodeSampling
from scalper_trainer.env.core import Fill, MarketTape, StepResult, TradingBatch
from scalper_trainer.env.episodes import (
    EpisodeSet,
    bars_by_symbol,
    episodes_from_bars,
    episodes_from_frame,
    load_episodes,
    synthetic_episodes,
)
from scalper_trainer.env.reference import make_reference_env, make_reference_vec_env
from scalper_trainer.env.single import TradingEnv
from scalper_trainer.env.vec import ScalperVecEnv, make_vec_env

__all__ = [
    "DEFAULT_ENV_CONFIG", "EnvConfig", "EpisodeSampling", "EpisodeSet", "Fill", "MarketTape", "ScalperVecEnv",
    "StepResult", "TradingBatch", "TradingEnv", "bars_by_symbol", "episodes_from_bars",
    "episodes_from_frame", "load_episodes", "make_reference_env", "make_reference_vec_env",
    "make_vec_env", "synthetic_episodes",
]
