"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from scalper_trainer.env import EnvConfig, Fill
from scalper_trainer.evaluation.engine import Trade
from scalper_trainer.evaluation.metrics import (
    cooldown_compliance,
    exits_by_reason,
    kl_divergence,
    max_drawdown,
    momentum_accuracy,
    performance,
    profit_factor,
    stop_fill_returns,
)
from scalper_trainer.evaluation.significance import (
    bootstrap_mean_difference_ci,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)


def test_profit_factor_is_gross_profit_over_gross_loss() -> None:
    assert profit_factor([100.0, -50.0, 30.0, -20.0]) == pytest.approx(130.0 / 70.0)
    assert profit_factor([10.0, 5.0]) is None          # no losing trade: undefined, not infinite
    assert profit_factor([-10.0]) == 0.0


def test_max_drawdown_is_the_largest_fall_from_a_running_peak_starting_at_zero() -> None:
    # equity 0, 100, 50, 120, 20, 60: worst fall 120 -> 20
    assert max_drawdown([100.0, -50.0, 70.0, -100.0, 40.0]) == pytest.approx(100.0)
    # a loss from the start counts from the initial 0
    assert max_drawdown([-30.0, -20.0, 10.0]) == pytest.approx(50.0)
    assert max_drawdown([5.0, 5.0]) == 0.0


def test_daily_sharpe_is_mean_over_sample_std_and_annualises_with_sqrt_252() -> None:
    daily = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, sample std sqrt(5/3)
    expected = 2.5 / math.sqrt(5.0 / 3.0)
    assert sharpe_ratio(daily) == pytest.approx(expected)
    perf = performance(daily, [1.0, -1.0, 2.0])
    assert perf["annualised_sharpe"] == pytest.approx(expected * math.sqrt(252))
    assert perf["total_pnl"] == 10.0 and perf["win_rate"] == pytest.approx(2 / 3)
    assert sharpe_ratio([3.0, 3.0]) is None


def test_probabilistic_sharpe_ratio_matches_the_bailey_lopez_de_prado_formula() -> None:
    x = np.array([1.0, -0.5, 2.0, 0.3, -1.2, 0.8, 1.5])
    sr = x.mean() / x.std(ddof=1)
    c = x - x.mean()
    sigma = np.sqrt((c**2).mean())
    skew, kurt = (c**3).mean() / sigma**3, (c**4).mean() / sigma**4
    z = sr * math.sqrt(len(x) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    expected = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert probabilistic_sharpe_ratio(x) == pytest.approx(expected)
    # symmetric returns around zero: a coin flip
    assert probabilistic_sharpe_ratio([1.0, -1.0, 1.0, -1.0]) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio([1.0, 2.0]) is None


def test_bootstrap_interval_is_deterministic_for_a_seed_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 50, 40), rng.normal(0, 50, 40)
    first = bootstrap_mean_difference_ci(a, b, seed=7, n_resamples=2000)
    again = bootstrap_mean_difference_ci(a, b, seed=7, n_resamples=2000)
    other = bootstrap_mean_difference_ci(a, b, seed=8, n_resamples=2000)
    assert first == again
    assert first != other
    assert first.estimate == pytest.approx(float((a - b).mean()))
    assert first.low < first.estimate < first.high
    constant = bootstrap_mean_difference_ci([5.0, 5.0, 5.0], [1.0, 1.0, 1.0])
    assert (constant.low, constant.high) == (4.0, 4.0) and not constant.includes_zero


def test_momentum_accuracy_counts_entries_whose_move_has_the_option_sign() -> None:
    sides = [1, 1, -1, -1, 1]
    moves = [0.5, -0.2, -0.1, 0.3, float("nan")]   # agree, disagree, agree, disagree, unknown
    assert momentum_accuracy(sides, moves) == {"entries": 4, "agreeing": 2, "accuracy": 0.5}
    assert momentum_accuracy([1], [0.0])["accuracy"] == 0.0    # no move is not agreement
    assert momentum_accuracy([], [])["accuracy"] is None


def _fill(reason: str, contracts: int, price: float, pnl: float, episode: int = 0, row: int = 0) -> Fill:
    return Fill(env=0, episode=episode, row=row, reason=reason, side=1, contracts=contracts, price=price, pnl=pnl)


def test_exits_by_reason_sums_fills_contracts_and_pnl_per_reason() -> None:
    fills = [_fill("entry", 10, 2.0, 0.0), _fill("tp1", 5, 2.4, 196.0), _fill("tp2", 4, 3.0, 396.0),
             _fill("agent", 1, 2.2, 18.0), _fill("entry", 10, 1.0, 0.0), _fill("stop", 10, 0.8, -210.0),
             _fill("entry", 10, 1.0, 0.0), _fill("end_of_day", 10, 1.1, 90.0)]
    out = exits_by_reason(fills)
    assert out["tp1"] == {"fills": 1, "contracts": 5, "pnl": 196.0}
    assert out["tp2"]["contracts"] == 4 and out["tp3"]["fills"] == 0
    assert out["stop"] == {"fills": 1, "contracts": 10, "pnl": -210.0}
    assert out["agent"]["fills"] == 1 and out["end_of_day"]["pnl"] == 90.0
    assert "entry" not in out
    assert stop_fill_returns(fills) == [pytest.approx(-0.2)]


def test_kl_divergence_of_two_known_distributions() -> None:
    p, q = [0.5, 0.5], [0.25, 0.75]
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(p, q) == pytest.approx(expected)
    assert kl_divergence(p, p) == 0.0
    # rows are averaged; zero-probability entries of p add nothing
    assert kl_divergence([[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]) == pytest.approx(math.log(2) / 2)


def _trade(entry: int, exit_row: int, reason: str, symbol: str = "SPY") -> Trade:
    return Trade(symbol, date(2025, 7, 1), 1, entry, exit_row, 1.0, 10, 0.0, reason, 0.0, (0.0, 0.0))


def test_cooldown_compliance_flags_a_reentry_inside_the_cooldown() -> None:
    config = EnvConfig()  # 2 minutes after an exit, 10 after a stop
    ok = [_trade(10, 20, "agent"), _trade(22, 30, "stop"), _trade(40, 45, "agent")]
    assert cooldown_compliance(ok, config) == (2, 0)
    early = [_trade(10, 20, "stop"), _trade(25, 30, "agent"), _trade(5, 8, "agent", symbol="QQQ")]
    assert cooldown_compliance(early, config) == (1, 1)
