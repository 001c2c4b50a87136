"""The environments of a training job (:class:`EnvBundle`) and the default factory that builds them.

Training episodes are the symbol-sessions of ``train_from..train_to``, drawn at random by the
batched environment. The validation set (for the checkpoint diagnostics) is every symbol-session of
``validation_from..validation_to``, compiled once into a :class:`MarketTape` that the diagnostics
play from start to close at every checkpoint: the same days at every checkpoint. Bars come from the
database (``data_source="database"``, the default) or the embedded synthetic market.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy import Engine
from stable_baselines3.common.vec_env import VecEnv

from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env import (
    EnvConfig,
    EpisodeSet,
    MarketTape,
    load_episodes,
    make_vec_env,
    synthetic_episodes,
)

logger = logging.getLogger(__name__)


class MissingBars(ValueError):
    """The database has no bars for a symbol of the job's window."""


@dataclass
class EnvBundle:
    """The training VecEnv, the validation set and the environment config both use."""

    train: VecEnv
    validation: MarketTape
    env_config: EnvConfig

    def close(self) -> None:
        self.train.close()


class EnvFactory(Protocol):
    def __call__(self, config: TrainConfig, engine: Engine) -> EnvBundle: ...


def env_config_for(config: TrainConfig) -> EnvConfig:
    """The environment a job trains on: the job's reward and premium configs, no per-step reward-term infos."""
    return EnvConfig(reward=config.reward, premium=config.premium, risk=config.risk, step_reward_terms=False)


def episodes_for(config: TrainConfig, engine: Engine, start: date, end: date) -> EpisodeSet:
    """The job's symbol-sessions of ``start..end``; every symbol must have bars there."""
    if config.data_source == "synthetic":
        return synthetic_episodes(start, end, seed=config.data_seed, symbols=config.symbols, edge=config.data_edge)
    try:
        episodes = load_episodes(engine, config.symbols, start, end)
    except ValueError as error:
        raise MissingBars(f"{error}: {_import_hint(config, start, end)}") from None
    missing = sorted(set(config.symbols) - set(episodes.symbols))
    if missing:
        raise MissingBars(f"no regular-session bars for {missing} between {start} and {end} in the database: "
                          f"{_import_hint(config, start, end)}")
    return episodes


def _import_hint(config: TrainConfig, start: date, end: date) -> str:
    return (f"import them first (`scalper ingest file PATH` for a Polygon-format CSV, or `scalper ingest backfill "
            f"--symbols {','.join(config.symbols)} --from {start} --to {end}` with POLYGON_API_KEY), "
            "or train on the embedded synthetic market with `--source synthetic`")


def default_env_factory(config: TrainConfig, engine: Engine) -> EnvBundle:
    train = episodes_for(config, engine, config.train_from, config.train_to)
    validation = episodes_for(config, engine, config.validation_from, config.validation_to)
    logger.info("episodes: %d training (%s..%s), %d validation (%s..%s)", len(train), config.train_from,
                config.train_to, len(validation), config.validation_from, config.validation_to)
    env_config = env_config_for(config)
    return EnvBundle(train=make_vec_env(train, env_config, n_envs=config.n_envs, seed=config.seed),
                     validation=MarketTape(validation, env_config), env_config=env_config)
