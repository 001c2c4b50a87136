"""Diagnostics on decision steps: definitions on hand-built traces, warnings, PPO statistics, determinism."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.schema.training import PPOStats
from scalper_trainer.diagnostics import (
    DecisionTrace,
    RewardTermTally,
    UpdateLog,
    collapse_warning,
    not_learning_warning,
    play_validation,
    ppo_stats,
    sample_actions,
    summarise,
)
from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.evaluation.engine import EvaluationResult

FLAT = [True, True, True, False, False, False]
"""Flat with an entry allowed: a decision step."""
HOLD_ONLY = [True, False, False, False, False, False]
"""Flat, entries blocked (daily loss limit, cooldown, cutoff): not a decision step."""
IN_POSITION = [True, False, False, True, True, True]
NO_UPDATES = PPOStats(updates=0, gradient_steps=0)


def masked_uniform(masks: list[list[bool]]) -> np.ndarray:
    allowed = np.asarray(masks, dtype=float)
    return allowed / allowed.sum(axis=1, keepdims=True)


def trace_of(probabilities: np.ndarray, masks: list[list[bool]], setup: list[int],
             sampled: list[int] | None = None) -> DecisionTrace:
    n = len(masks)
    return DecisionTrace([np.asarray(probabilities, dtype=float)], [np.asarray(masks, dtype=bool)],
                         [np.asarray(setup, dtype=np.int8)],
                         [np.asarray(sampled if sampled is not None else [0] * n, dtype=np.int64)])


def result_of(days: list[date], pnl: list[float], trades: list[int]) -> EvaluationResult:
    return EvaluationResult(policy="agent", symbols=tuple("SPY" for _ in days), days=tuple(days),
                            episode_pnl=np.asarray(pnl, dtype=float), episode_trades=np.asarray(trades, np.int64),
                            trades=[], fills=[], action_counts=np.zeros(6, np.int64), entropies=None, states=None,
                            steps=0, seconds=0.0, reward_terms={"pnl": -0.01, "total": -0.01})


ONE_DAY = result_of([date(2025, 10, 1)], [0.0], [0])


def test_a_uniform_policy_shows_hold_one_third_by_probability_and_hold_only_steps_are_excluded() -> None:
    masks = [FLAT] * 4 + [HOLD_ONLY] * 6 + [IN_POSITION] * 2
    d = summarise(5_000, trace_of(masked_uniform(masks), masks, [0] * 12), ONE_DAY, NO_UPDATES)
    assert d.validation_steps == 12 and d.decision_steps == 4 and d.position_steps == 2
    assert d.hold_share == pytest.approx(1 / 3)
    assert d.buy_share == pytest.approx(2 / 3)
    assert d.buy_call_share == pytest.approx(1 / 3) and d.buy_put_share == pytest.approx(1 / 3)
    assert d.entropy == pytest.approx(math.log(3))
    assert d.exit_share == pytest.approx(1 / 4) and d.trim_50_share == pytest.approx(1 / 4)


def test_blocked_setups_are_excluded_from_the_setup_buy_rate() -> None:
    masks = [FLAT, FLAT, HOLD_ONLY, HOLD_ONLY, FLAT]
    probabilities = np.array([[0.1, 0.8, 0.1, 0, 0, 0],    # call setup, buys the call
                              [0.5, 0.1, 0.4, 0, 0, 0],    # put setup
                              [1.0, 0, 0, 0, 0, 0],        # setup, but buying is blocked
                              [1.0, 0, 0, 0, 0, 0],        # setup, but buying is blocked
                              [0.9, 0.05, 0.05, 0, 0, 0]])  # no setup
    d = summarise(1, trace_of(probabilities, masks, [1, -1, 1, -1, 0]), ONE_DAY, NO_UPDATES)
    assert d.setup_steps == 2
    assert d.setup_buy_rate == pytest.approx((0.9 + 0.5) / 2)
    assert d.setup_direction_buy_rate == pytest.approx((0.8 + 0.4) / 2)
    assert d.nonsetup_buy_rate == pytest.approx(0.1)
    assert d.selectivity == pytest.approx(0.7 - 0.1)


def test_sampled_and_argmax_shares_are_reported_apart_from_probabilities() -> None:
    masks = [FLAT] * 4
    probabilities = np.tile([0.36, 0.32, 0.32, 0, 0, 0], (4, 1))
    d = summarise(1, trace_of(probabilities, masks, [0] * 4, sampled=[1, 2, 0, 1]), ONE_DAY, NO_UPDATES)
    assert d.argmax_hold_share == 1.0  # HOLD wins the top spot on every step ...
    assert d.hold_share == pytest.approx(0.36)  # ... with a probability of 0.36
    assert d.sampled_buy_share == pytest.approx(0.75)


def test_trades_and_pnl_are_per_symbol_day_and_per_account_day() -> None:
    day1, day2 = date(2025, 10, 1), date(2025, 10, 2)
    result = result_of([day1, day1, day2, day2], [-100.0, 50.0, -30.0, -20.0], [3, 1, 2, 2])
    d = summarise(1, trace_of(masked_uniform([FLAT]), [FLAT], [0]), result, NO_UPDATES)
    assert (d.symbol_days, d.account_days) == (4, 2)
    assert d.trades_per_symbol_day == pytest.approx(2.0) and d.trades_per_account_day == pytest.approx(4.0)
    assert d.pnl_per_symbol_day == pytest.approx(-25.0) and d.pnl_per_account_day == pytest.approx(-50.0)
    assert d.reward_terms == {"pnl": -0.01, "total": -0.01}


def test_seed_criteria_pass_and_fail_on_their_bounds() -> None:
    masks = [FLAT] * 2
    good = np.array([[0.30, 0.70, 0.0, 0, 0, 0], [0.30, 0.0, 0.70, 0, 0, 0]])
    d = summarise(1, trace_of(good, masks, [1, -1]), ONE_DAY, NO_UPDATES)
    assert d.seed_criteria == {"hold_share_at_most_35pct": True, "buy_share_at_least_65pct": True,
                               "setup_buy_rate_at_least_80pct": False}
    uniform = summarise(1, trace_of(masked_uniform(masks), masks, [0, 0]), ONE_DAY, NO_UPDATES)
    assert uniform.seed_criteria["hold_share_at_most_35pct"] and uniform.seed_criteria["buy_share_at_least_65pct"]
    assert not uniform.seed_criteria["setup_buy_rate_at_least_80pct"]  # no setup: no evidence


@pytest.mark.parametrize(("holds", "expected"), [
    ([0.9], False), ([0.9, 0.7], False), ([0.7, 0.85, 0.81], True), ([0.85, 0.95, 0.5], False), ([0.8, 0.9], False),
    ([None, 0.9], False),
])
def test_collapse_needs_two_checkpoints_above_80_percent_hold_probability(holds: list[float | None],
                                                                          expected: bool) -> None:
    assert collapse_warning(holds) is expected


@pytest.mark.parametrize(("updates", "kl", "entropy", "expected"), [
    (99, 1e-6, 1.09, False),           # too early to tell
    (100, 9.9e-4, 0.5, True),          # stalled updates
    (100, 1e-3, 0.5, False),
    (150, 5e-3, 0.951 * math.log(3), True),  # still near uniform on decision steps
    (150, 5e-3, 0.949 * math.log(3), False),
    (150, None, None, False),
])
def test_not_learning_fires_exactly_on_its_definition(updates: int, kl: float | None, entropy: float | None,
                                                      expected: bool) -> None:
    assert not_learning_warning(PPOStats(updates=updates, gradient_steps=0, approx_kl=kl), entropy) is expected


def test_the_collapse_warning_is_set_from_the_previous_checkpoint() -> None:
    masks = [FLAT]
    holding = np.array([[0.9, 0.05, 0.05, 0, 0, 0]])
    first = summarise(1, trace_of(holding, masks, [0]), ONE_DAY, NO_UPDATES)
    second = summarise(2, trace_of(holding, masks, [0]), ONE_DAY, NO_UPDATES, previous=[first])
    assert not first.collapse_warning and second.collapse_warning


def test_an_annealed_learning_rate_lowers_the_stalled_kl_bar_with_it() -> None:
    # a linear schedule at 10% of its start: KL 5e-4 is what its small steps give, not a stall
    annealed = PPOStats(updates=200, gradient_steps=0, approx_kl=5e-4, learning_rate=1e-5, learning_rate_share=0.1)
    assert not not_learning_warning(annealed, 0.3)
    assert not_learning_warning(annealed.model_copy(update={"approx_kl": 5e-5}), 0.3)
    history = [{"approx_kl": 0.01, "learning_rate": 1e-4 * (1 - k / 20)} for k in range(20)]
    stats = ppo_stats(history, 16 * 256 * 20, 16, 256, 256, 10, start_learning_rate=1e-4)
    assert stats.learning_rate == pytest.approx(5e-6) and stats.learning_rate_share == pytest.approx(0.05)


def test_ppo_stats_count_updates_and_gradient_steps_and_take_medians_of_the_last_ten() -> None:
    history = [{"approx_kl": float(k), "clip_fraction": 0.1, "explained_variance": 0.5} for k in range(1, 21)]
    stats = ppo_stats(history, num_timesteps=16 * 256 * 7 + 100, n_envs=16, n_steps=256, batch_size=256, n_epochs=10)
    assert stats.updates == 7
    assert stats.gradient_steps == 7 * 10 * 16
    assert stats.approx_kl == pytest.approx(15.5)  # median of 11..20
    assert stats.explained_variance == 0.5
    assert ppo_stats([], 100, 16, 256, 256, 10).approx_kl is None


def test_the_update_log_records_each_update_once() -> None:
    log = UpdateLog()
    log.capture({})  # before the first update
    log.capture({"train/n_updates": 10, "train/approx_kl": 0.01, "train/clip_fraction": 0.2})
    log.capture({"train/n_updates": 10, "train/approx_kl": 0.01, "train/clip_fraction": 0.2})
    log.capture({"train/n_updates": 20, "train/approx_kl": 0.02})
    assert [h["approx_kl"] for h in log.history] == [0.01, 0.02]


def test_training_reward_terms_are_means_per_step_of_finished_episodes() -> None:
    tally = RewardTermTally()
    tally.add_infos([{"episode": {"l": 10}, "episode_reward_terms": {"pnl": -1.0, "hold_tax": -0.01}}, {}])
    tally.add_infos([{"episode": {"l": 30}, "episode_reward_terms": {"pnl": 0.2, "hold_tax": -0.03}}])
    means = tally.means_and_reset()
    assert means["pnl"] == pytest.approx(-0.8 / 40) and means["hold_tax"] == pytest.approx(-0.04 / 40)
    assert means["total"] == pytest.approx(-0.84 / 40)
    assert tally.means_and_reset() == {}


def test_sampling_follows_the_probabilities() -> None:
    probabilities = np.tile([0.2, 0.5, 0.3, 0, 0, 0], (20_000, 1))
    drawn = sample_actions(probabilities, np.random.default_rng(0))
    shares = np.bincount(drawn, minlength=6) / len(drawn)
    assert shares[:3] == pytest.approx([0.2, 0.5, 0.3], abs=0.015) and shares[3:].sum() == 0


def random_network(seed: int) -> NumpyPolicy:
    rng = np.random.default_rng(seed)
    return NumpyPolicy(hidden=((rng.normal(0, 0.05, (460, 16)), np.zeros(16)),),
                       head=(rng.normal(0, 0.5, (16, 6)), np.zeros(6)))


def test_the_same_model_on_the_fixed_validation_set_gives_identical_diagnostics() -> None:
    config = EnvConfig()
    tape = MarketTape(synthetic_episodes(date(2025, 7, 7), date(2025, 7, 9), seed=5, symbols=("SPY", "QQQ")), config)
    network = random_network(1)
    runs = [summarise(10, *play_validation(network, tape, config, seed=0), NO_UPDATES) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0].symbol_days == 6 and runs[0].account_days == 3
    assert runs[0].decision_steps > 0 and runs[0].validation_steps >= runs[0].decision_steps
    other = summarise(10, *play_validation(random_network(2), tape, config, seed=0), NO_UPDATES)
    assert other != runs[0]
