"""Trading environment speed: the batched VecEnv against the textbook reference, in one run.

Prints (wall clock and process CPU time, with the machine's load average, since the machine is shared):

1. env-only steps/s with random masked actions: ``ScalperVecEnv`` at several N, and the reference
   (``DummyVecEnv`` of ``ActionMasker(TradingEnv)``);
2. end-to-end MaskablePPO training steps/s with the same PPO hyperparameters on both, and the
   extrapolated time for 500k steps.

``python -m bench env`` (or ``make bench``). Environment variables shrink or grow it:
``BENCH_ENV_TRAIN_STEPS`` (default 65,536), ``BENCH_ENV_REF_TRAIN_STEPS`` (default 8,192: one rollout).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.vec_env import VecEnv

from scalper_trainer.env import (
    EnvConfig,
    MarketTape,
    make_reference_vec_env,
    make_vec_env,
    synthetic_episodes,
)

N_ENVS = 128
PPO_KWARGS = {
    "n_steps": 64,            # rollout of 128 x 64 = 8,192 steps
    "batch_size": 4096,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "ent_coef": 0.08,
    "policy_kwargs": {"net_arch": [64, 64]},
}
TORCH_THREADS = 1  # 2 threads oversubscribe a shared 2-core machine (measured 8x slower per CPU-s)
GOALS = {"train": 3_000.0, "env": 100_000.0, "ratio": 5.0}


@dataclass(frozen=True)
class Rate:
    steps: int
    wall: float
    cpu: float

    @property
    def per_s(self) -> float:
        return self.steps / self.wall

    @property
    def per_cpu_s(self) -> float:
        return self.steps / self.cpu

    def line(self, label: str) -> str:
        return (f"{label:<44} {self.per_s:>10,.0f} steps/s wall  {self.per_cpu_s:>10,.0f} per CPU-s  "
                f"({self.steps:,} steps in {self.wall:.1f}s)")


def _timed(run: Callable[[], int]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    steps = run()
    return Rate(steps, time.perf_counter() - wall, time.process_time() - cpu)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} cores"


def random_masked_steps(env: VecEnv, batches: int, seed: int = 0) -> Rate:
    """Step ``env`` with uniformly random allowed actions; masks fetched the way MaskablePPO does."""
    rng = np.random.default_rng(seed)
    env.reset()

    def run() -> int:
        for _ in range(batches):
            masks = get_action_masks(env)
            env.step((rng.random(masks.shape) * masks).argmax(axis=1))
        return batches * env.num_envs

    return _timed(run)


def train_steps(env: VecEnv, total: int, seed: int = 0) -> Rate:
    model = MaskablePPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **PPO_KWARGS)
    return _timed(lambda: int(model.learn(total_timesteps=total).num_timesteps))


def main() -> None:
    torch.set_num_threads(TORCH_THREADS)
    train_total = int(os.environ.get("BENCH_ENV_TRAIN_STEPS", 65_536))
    ref_total = int(os.environ.get("BENCH_ENV_REF_TRAIN_STEPS", 8_192))
    started = time.perf_counter()
    episodes = synthetic_episodes(date(2024, 3, 4), date(2024, 3, 29), seed=7)
    config = EnvConfig()
    tape = MarketTape(episodes, config)
    print(f"episodes: {episodes.n_episodes} symbol-days, {int(episodes.offsets[-1]):,} rows "
          f"(built in {time.perf_counter() - started:.1f}s); {_load()}")
    print(f"PPO: n_envs={N_ENVS} {PPO_KWARGS}, torch threads {TORCH_THREADS}")

    print("\nenv only (random masked actions):")
    env_rates = {}
    for n in (64, N_ENVS, 256, 1024):
        env_rates[n] = random_masked_steps(make_vec_env(tape, config, n, seed=0), 120_000 // n + 20)
        print("  " + env_rates[n].line(f"ScalperVecEnv n_envs={n}"))
    ref_env = random_masked_steps(make_reference_vec_env(tape, config, N_ENVS, seed=0), 30)
    print("  " + ref_env.line(f"reference DummyVecEnv n_envs={N_ENVS}"))
    print(f"  {_load()}")

    print("\nend-to-end MaskablePPO training:")
    ours = train_steps(make_vec_env(tape, config, N_ENVS, seed=0), train_total)
    print("  " + ours.line(f"ScalperVecEnv n_envs={N_ENVS}"))
    ref = train_steps(make_reference_vec_env(tape, config, N_ENVS, seed=0), ref_total)
    print("  " + ref.line(f"reference n_envs={N_ENVS}"))
    print(f"  {_load()}")

    best_env = max(env_rates.values(), key=lambda r: r.per_s)
    print("\nsummary vs goals:")
    print(f"  training {ours.per_s:,.0f} steps/s (goal {GOALS['train']:,.0f}); 500k steps in "
          f"{500_000 / ours.per_s / 60:.1f} min wall ({500_000 / ours.per_cpu_s / 60:.1f} min of CPU)")
    print(f"  env only {best_env.per_s:,.0f} steps/s wall, {best_env.per_cpu_s:,.0f} per CPU-s "
          f"(goal {GOALS['env']:,.0f})")
    print(f"  vs reference: training x{ours.per_s / ref.per_s:.1f} wall / x{ours.per_cpu_s / ref.per_cpu_s:.1f} CPU, "
          f"env only x{env_rates[N_ENVS].per_s / ref_env.per_s:.1f} at the same "
          f"n_envs (goal x{GOALS['ratio']:.0f})")


if __name__ == "__main__":
    main()
