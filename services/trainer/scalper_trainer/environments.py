"""The default :class:`~scalper_trainer.jobs.EnvFactory`: the trading environment of ``scalper_trainer.env``.

Training episodes are the symbol-sessions of ``train_from..train_to``; validation episodes (for
the checkpoint diagnostics) those of ``validation_from..validation_to``, from the database or the
embedded synthetic market (``TrainConfig.data_source``). Validation draws episodes at random, as
many as there are validation episodes, so most days are seen once per checkpoint.
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import Engine

from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env import EnvConfig, EpisodeSet, load_episodes, make_vec_env, synthetic_episodes
from scalper_trainer.jobs import EnvBundle

logger = logging.getLogger(__name__)

MAX_VALIDATION_ENVS = 16
VALIDATION_SEED_OFFSET = 1_000_000


def env_config_for(config: TrainConfig) -> EnvConfig:
    """The environment a job trains on: the job's reward config, no per-step reward-term infos."""
    return EnvConfig(reward=config.reward, step_reward_terms=False)


def episodes_for(config: TrainConfig, engine: Engine, start: date, end: date) -> EpisodeSet:
    if config.data_source == "synthetic":
        return synthetic_episodes(start, end, seed=config.data_seed, symbols=config.symbols)
    return load_episodes(engine.url.render_as_string(hide_password=False), config.symbols, start, end)


def default_env_factory(config: TrainConfig, engine: Engine) -> EnvBundle:
    train = episodes_for(config, engine, config.train_from, config.train_to)
    validation = episodes_for(config, engine, config.validation_from, config.validation_to)
    logger.info("episodes: %d training (%s..%s), %d validation (%s..%s)", len(train), config.train_from,
                config.train_to, len(validation), config.validation_from, config.validation_to)
    env_config = env_config_for(config)
    return EnvBundle(
        train=make_vec_env(train, env_config, n_envs=config.n_envs, seed=config.seed),
        validation=make_vec_env(validation, env_config, n_envs=min(len(validation), MAX_VALIDATION_ENVS),
                                seed=config.seed + VALIDATION_SEED_OFFSET),
        validation_episodes=len(validation))
