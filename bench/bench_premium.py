"""Per-step cost of the pure core the training environment calls for N environments at once.

Times ``quote`` (Black-Scholes + IV model + spread), ``action_masks``, ``stop_triggered`` and
``reward_terms`` over N = 1, 16, 64 and 256 environments, vectorised, and the scalar ``quote``
called N times in a loop for comparison. Prints microseconds per call and environment-steps per
second. Seeded inputs; no assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from scalper_shared.core.actions import Action
from scalper_shared.core.masks import action_masks
from scalper_shared.core.premium import atm_strike, quote
from scalper_shared.core.rewards import reward_terms
from scalper_shared.core.risk import stop_triggered

SEED = 7
SIZES = (1, 16, 64, 256)
SYMBOLS = ("SPY", "QQQ", "SPX")
PRICES = {"SPY": 560.0, "QQQ": 480.0, "SPX": 5600.0}


def _time(call: Callable[[], object], repeats: int) -> float:
    """Best-of-3 mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def _inputs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray | list[str]]:
    symbols = [SYMBOLS[i % len(SYMBOLS)] for i in range(n)]
    spots = np.array([PRICES[s] for s in symbols]) * np.exp(rng.normal(0, 2e-3, n))
    return {
        "symbols": symbols, "spots": spots,
        "strikes": np.asarray(atm_strike(symbols, spots)) if n > 1 else np.array([atm_strike(symbols[0], spots[0])]),
        "rights": rng.random(n) < 0.5, "minutes": rng.uniform(5, 390, n),
        "vols": rng.uniform(0.08, 0.4, n), "tod": rng.uniform(0, 390, n),
    }


def _bench_size(n: int, rng: np.random.Generator) -> None:
    x = _inputs(n, rng)
    repeats = max(20, 2000 // n)
    t_quote = _time(lambda: quote(x["symbols"], x["spots"], x["strikes"], x["rights"],
                                  x["minutes"], x["vols"], x["tod"]), repeats)
    t_scalar = _time(lambda: [quote(x["symbols"][i], x["spots"][i], x["strikes"][i],
                                    "call" if x["rights"][i] else "put", x["minutes"][i],
                                    x["vols"][i], x["tod"][i]) for i in range(n)], max(3, repeats // 20))
    is_open = rng.random(n) < 0.5
    trades = np.zeros(n)
    t_mask = _time(lambda: action_masks(is_open, minutes_to_close=x["minutes"], trades_today=trades), repeats)
    entry = rng.uniform(1, 3, n)
    bids = entry * rng.uniform(0.8, 1.2, n)
    t_stop = _time(lambda: stop_triggered(entry, bids), repeats)
    actions = rng.integers(0, len(Action), n)
    extension, contracts = np.ones(n), np.full(n, 2)
    t_reward = _time(lambda: reward_terms(
        action=actions, was_flat=~is_open, entry_allowed=~is_open, strong_call_setup=is_open, extension_atr=extension,
        closed_contracts=is_open * 2, entry_price=entry, exit_price=entry * 1.1, entry_contracts=contracts),
        repeats)
    per_step = t_quote + t_mask + t_stop + t_reward
    print(f"{n:>5} {t_quote * 1e6:>10.1f} {t_scalar * 1e6:>20.1f} {t_mask * 1e6:>9.1f} "
          f"{t_stop * 1e6:>8.1f} {t_reward * 1e6:>11.1f} {n / per_step:>23,.0f}")


def main() -> None:
    rng = np.random.default_rng(SEED)
    print(f"{'N':>5} {'quote us':>10} {'quote x N scalar us':>20} {'masks us':>9} {'stop us':>8} "
          f"{'rewards us':>11} {'env-steps/s (all four)':>23}")
    for n in SIZES:
        _bench_size(n, rng)


if __name__ == "__main__":
    main()
