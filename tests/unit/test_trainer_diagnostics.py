"""Diagnostics: shares, strong-setup BUY rate, collapse rule, and a real masked rollout."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from scalper_shared.core.actions import Action
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.diagnostics import Rollout, collapse_warning, collect_rollout, summarise
from tests.fakes.tiny_trading_env import tiny_vec_env


def test_summary_counts_actions_setups_trades_and_pnl() -> None:
    rollout = Rollout(
        actions=[Action.HOLD, Action.HOLD, Action.BUY_CALL, Action.EXIT, Action.BUY_PUT, Action.HOLD, Action.HOLD,
                 Action.HOLD],
        setup_sides=[0, 1, 1, 0, -1, -1, 0, 0],
        entropies=[1.0] * 8,
        episode_pnls=[0.1, -0.3],
        episode_trades=[2, 0],
    )
    d = summarise(5_000, rollout)
    assert d.step == 5_000 and d.validation_steps == 8
    assert d.hold_pct == pytest.approx(5 / 8)
    assert d.buy_pct == pytest.approx(2 / 8)
    assert d.buy_call_pct == pytest.approx(1 / 8) and d.buy_put_pct == pytest.approx(1 / 8)
    assert d.strong_setup_buy_rate == pytest.approx(2 / 4)
    assert d.trades_per_day == pytest.approx(1.0)
    assert d.mean_episode_pnl == pytest.approx(-0.1)
    assert d.policy_entropy == pytest.approx(1.0)


def test_no_strong_setup_means_no_rate() -> None:
    assert summarise(1, Rollout(actions=[0], setup_sides=[0], entropies=[0.5])).strong_setup_buy_rate is None


@pytest.mark.parametrize(("holds", "expected"), [
    ([0.9], False), ([0.9, 0.7], False), ([0.7, 0.85, 0.81], True), ([0.85, 0.95, 0.5], False), ([0.8, 0.9], False),
])
def test_collapse_needs_two_checkpoints_above_80_percent_hold(holds: list[float], expected: bool) -> None:
    assert collapse_warning(holds) is expected


def test_rollout_of_a_fresh_policy_respects_masks_and_counts_episodes() -> None:
    from sb3_contrib import MaskablePPO

    from scalper_trainer.config import maskable_ppo_kwargs

    config = TrainConfig(train_from=date(2025, 7, 1), train_to=date(2025, 7, 2), validation_from=date(2025, 7, 3),
                         validation_to=date(2025, 7, 4), device="cpu", n_envs=2,
                         ppo={"n_steps": 32, "batch_size": 64})
    model = MaskablePPO("MlpPolicy", tiny_vec_env(2, 0), **maskable_ppo_kwargs(config))
    rollout = collect_rollout(model, tiny_vec_env(2, 99, length=25), n_episodes=4)
    assert len(rollout.episode_pnls) == 4 and len(rollout.episode_trades) == 4
    assert len(rollout.actions) == 2 * 25 * 2
    assert 0.0 < np.mean(rollout.entropies) <= np.log(6)
    summary = summarise(0, rollout)
    assert summary.hold_pct + summary.buy_pct <= 1.0
