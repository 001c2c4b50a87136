"""Evaluation engine speed: symbol-days per second for the agent (numpy actor 128x128) and the
baselines, on the synthetic market (``python -m bench eval``). ``BENCH_EVAL_DAYS`` sets the window
length in calendar days (default 30, three symbols)."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

import numpy as np

from scalper_shared.core.policy_net import NumpyPolicy
from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.evaluation import AgentPolicy, baseline_policies, evaluate


def _network() -> NumpyPolicy:
    rng = np.random.default_rng(0)
    return NumpyPolicy(hidden=((rng.normal(0, 0.05, (460, 128)), np.zeros(128)),
                               (rng.normal(0, 0.1, (128, 128)), np.zeros(128))),
                       head=(rng.normal(0, 1.0, (128, 6)), np.zeros(6)))


def main() -> None:
    days = int(os.environ.get("BENCH_EVAL_DAYS", "30"))
    start = date(2025, 7, 1)
    episodes = synthetic_episodes(start, start + timedelta(days=days - 1), seed=0)
    config = EnvConfig()
    tape = MarketTape(episodes, config)
    print(f"{episodes.n_episodes} symbol-days, load average {os.getloadavg()[0]:.1f}")
    for policy in (AgentPolicy(_network()), *baseline_policies()):
        wall, cpu = time.perf_counter(), time.process_time()
        result = evaluate(policy, tape, config, seed=0, keep_states=policy.name == "agent")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{policy.name:>14}: {result.n_episodes / wall:7.1f} symbol-days/s wall ({result.n_episodes / cpu:7.1f}"
              f" per CPU-s), {result.steps / wall:9,.0f} steps/s, {len(result.trades)} trades")
