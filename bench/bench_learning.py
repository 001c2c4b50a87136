"""Does PPO learn? The default preset against alternatives on the real bars (``python -m bench learning``).

Trains each candidate on the real SPY + QQQ bars of ``../shared/data`` (2025-07-01..2025-09-30),
validates on October 2025 (days the model never sees), through the worker's own code path
(:func:`scalper_trainer.local.train_locally`: same environment, checkpoints, diagnostics), and
prints at 100k, 250k, 500k and 1M steps: PPO updates and gradient steps, median approx_kl of the
last 10 updates, entropy on decision steps, setup and non-setup BUY rates (mean probabilities on
decision steps), validation after-cost P&L per account-day and training steps/s (wall, checkpoint
diagnostics included). It first prints the share of training samples whose only legal action is
HOLD under a random masked policy, with and without the early end of an episode that has no
decision left.

Settings: ``BENCH_LEARNING_STEPS`` (default 1,000,000), ``BENCH_LEARNING_CONFIGS`` (comma-separated
names, default all), ``BENCH_LEARNING_SEED`` (0), ``BENCH_DATABASE`` (a PostgreSQL database the
bench may create and migrate; default ``scalper_bench_learning`` on ``TEST_POSTGRES_URL``'s server).
torch runs one intra-op thread (the trainer's default, ``TRAINER_TORCH_THREADS``). About 10
minutes per candidate and million steps on a 2-core machine.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from scalper_shared.core.actions import Action
from scalper_shared.db import make_engine, migrate
from scalper_shared.schema.training import Diagnostics, TrainConfig
from scalper_trainer.env import EnvConfig, EpisodeSet, MarketTape, episodes_from_frame, make_vec_env
from scalper_trainer.env.bundle import EnvBundle, env_config_for

DATA = Path(os.environ.get("SCALPER_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
FILES = {"SPY": ("SPY_1m_2025-07.csv.gz", "SPY_1m_2025-08_2025-10.csv.gz"), "QQQ": ("QQQ_1m_2025-08_2025-10.csv.gz",)}
TRAIN = (date(2025, 7, 1), date(2025, 9, 30))
VALIDATION = (date(2025, 10, 1), date(2025, 10, 31))
REPORT_AT = (100_000, 250_000, 500_000, 1_000_000)
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {"preset": "default"},
    "legacy": {"preset": "legacy"},
    "wide-batch": {"preset": "default", "n_envs": 64, "ppo": {"n_steps": 128, "batch_size": 1024}},
    "no-entropy": {"preset": "default", "ppo": {"ent_coef": 0.0}},
    "low-lr": {"preset": "default", "ppo": {"learning_rate": 1e-4}},
}


def real_bars() -> pd.DataFrame:
    """Every real bar of ``FILES`` in the ingestion frame shape (symbol, start, open, ..., volume)."""
    frames = []
    for symbol, names in FILES.items():
        for name in names:
            raw = pd.read_csv(DATA / name)
            frames.append(pd.DataFrame({"symbol": symbol, "start": pd.to_datetime(raw["t"], unit="ms", utc=True),
                                        "open": raw["o"], "high": raw["h"], "low": raw["l"], "close": raw["c"],
                                        "volume": raw["v"]}))
    return pd.concat(frames, ignore_index=True).drop_duplicates(["symbol", "start"])


def window(episodes: EpisodeSet, first: date, last: date) -> EpisodeSet:
    return episodes.select([i for i, day in enumerate(episodes.days) if first <= day <= last])


class FileEnvFactory:
    """The default factory's environments, with bars read from the files instead of the bars table."""

    def __init__(self, episodes: EpisodeSet) -> None:
        self.train, self.validation = window(episodes, *TRAIN), window(episodes, *VALIDATION)

    def __call__(self, config: TrainConfig, engine: Any) -> EnvBundle:
        env_config = env_config_for(config)
        return EnvBundle(train=make_vec_env(self.train, env_config, n_envs=config.n_envs, seed=config.seed),
                         validation=MarketTape(self.validation, env_config), env_config=env_config)


def hold_only_share(episodes: EpisodeSet, shortcuts: bool, steps: int = 200_000, n_envs: int = 64) -> float:
    """Share of training samples whose only legal action is HOLD, under a random masked policy."""
    config = EnvConfig(end_when_no_decision_left=shortcuts, skip_minutes_without_decision=shortcuts)
    env = make_vec_env(episodes, config, n_envs=n_envs, seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    hold_only = 0
    for _ in range(steps // n_envs):
        masks = np.stack(env.env_method("action_masks"))
        hold_only += int((masks.sum(axis=1) == 1).sum())
        allowed = masks / masks.sum(axis=1, keepdims=True)
        actions = (rng.random((n_envs, 1)) > np.cumsum(allowed, axis=1)).sum(axis=1)
        env.step(np.minimum(actions, len(Action) - 1))
    return hold_only / (steps // n_envs * n_envs)


def bench_database() -> str:
    server = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = os.environ.get("BENCH_DATABASE", "scalper_bench_learning")
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    migrate(url)
    return url


def row(name: str, d: Diagnostics, rate: float) -> str:
    def f(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return (f"{name:>11} {d.step:>9,} {d.ppo.updates:>7,} {d.ppo.gradient_steps:>8,} {f(d.ppo.approx_kl, '.1e'):>8} "
            f"{f(d.entropy, '.3f'):>7} {f(d.hold_share, '.3f'):>6} {f(d.setup_buy_rate, '.3f'):>9} "
            f"{f(d.nonsetup_buy_rate, '.3f'):>9} {d.trades_per_account_day:>7.1f} {d.pnl_per_account_day:>9,.0f} "
            f"{rate:>8,.0f}")


def main() -> None:
    import torch

    from scalper_trainer.local import train_locally

    torch.set_num_threads(1)
    steps = int(os.environ.get("BENCH_LEARNING_STEPS", "1000000"))
    wanted = [n for n in os.environ.get("BENCH_LEARNING_CONFIGS", ",".join(CANDIDATES)).split(",") if n]
    seed = int(os.environ.get("BENCH_LEARNING_SEED", "0"))
    episodes = episodes_from_frame(real_bars())
    factory = FileEnvFactory(episodes)
    print(f"real bars: {factory.train.n_episodes} training symbol-days {TRAIN[0]}..{TRAIN[1]}, "
          f"{factory.validation.n_episodes} validation symbol-days {VALIDATION[0]}..{VALIDATION[1]}", flush=True)
    before, after = hold_only_share(factory.train, False), hold_only_share(factory.train, True)
    print(f"random masked policy, share of training samples where HOLD is the only legal action: "
          f"{before:.1%} when every episode plays every minute to the close, {after:.1%} when an episode ends once "
          f"no decision is left and skips cooldown minutes", flush=True)
    url = bench_database()
    engine = make_engine(url)
    print(f"{'config':>11} {'step':>9} {'updates':>7} {'grad st.':>8} {'kl(med)':>8} {'entropy':>7} {'P(HOLD)':>6} "
          f"{'setup BUY':>9} {'nonsetup':>9} {'tr/day':>7} {'P&L/day':>9} {'steps/s':>8}", flush=True)
    try:
        for name in wanted:
            body = {**CANDIDATES[name], "symbols": ["SPY", "QQQ"], "train_from": TRAIN[0], "train_to": TRAIN[1],
                    "validation_from": VALIDATION[0], "validation_to": VALIDATION[1], "total_timesteps": steps,
                    "checkpoint_every": steps, "seed": seed, "device": "cpu"}
            config = TrainConfig.model_validate(body)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = train_locally(config, job_id=f"bench-{name}-{uuid.uuid4().hex[:8]}", engine=engine,
                                       artifacts_dir=Path(tmp), out_dir=Path(tmp) / "out", env_factory=factory)
            rate = result.steps / (time.perf_counter() - started)
            for target in sorted({*(t for t in REPORT_AT if t <= steps), steps}):
                reached = [d for d in result.diagnostics if d.step >= target]
                if reached:
                    print(row(name, reached[0], rate), flush=True)
            print(f"{name:>11}: ppo {config.ppo.model_dump()} n_envs {config.n_envs}", flush=True)
    finally:
        engine.dispose()
