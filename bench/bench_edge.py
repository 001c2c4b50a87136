"""The planted ``momentum`` edge's after-cost expectancy: ``edge_rule`` on synthetic markets with and
without the edge (SPY+QQQ, 2025, seeds 0-4), through the evaluation engine (real fills and costs).

Prints per market: symbol-days, trades, mean premium return per trade with its standard error, and
P&L per symbol-day. The figures in ``docs/rewards.md`` come from here.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.evaluation.engine import evaluate
from scalper_trainer.evaluation.policies import EdgeRulePolicy

WINDOW = (date(2025, 1, 2), date(2025, 12, 31))
SEEDS = (0, 1, 2, 3, 4)


def main() -> None:
    config = EnvConfig()
    print(f"{'edge':<10}{'seed':>5}{'symbol-days':>13}{'trades':>8}{'ret/trade':>11}{'s.e.':>8}{'$/symbol-day':>14}")
    for edge in ("momentum", "none"):
        returns, pnl = [], []
        for seed in SEEDS:
            started = time.perf_counter()
            tape = MarketTape(synthetic_episodes(*WINDOW, seed=seed, symbols=("SPY", "QQQ"), edge=edge), config)
            result = evaluate(EdgeRulePolicy(), tape, config)
            r = np.array([t.premium_return for t in result.trades])
            returns.append(r)
            pnl.append(result.episode_pnl)
            print(f"{edge:<10}{seed:>5}{result.n_episodes:>13}{r.size:>8}{r.mean():>11.4f}"
                  f"{r.std(ddof=1) / np.sqrt(r.size):>8.4f}{result.episode_pnl.mean():>14.1f}"
                  f"   ({time.perf_counter() - started:.1f}s)")
        r, p = np.concatenate(returns), np.concatenate(pnl)
        print(f"{edge:<10}{'all':>5}{p.size:>13}{r.size:>8}{r.mean():>11.4f}{r.std(ddof=1) / np.sqrt(r.size):>8.4f}"
              f"{p.mean():>14.1f}")


if __name__ == "__main__":
    main()
