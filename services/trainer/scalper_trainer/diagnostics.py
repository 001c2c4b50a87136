"""Checkpoint diagnostics: how the policy behaves on the held-out validation days.

:func:`collect_rollout` runs the current policy (deterministic, masked) through validation
episodes and records per-step actions, strong-setup sides, entropies and per-episode P&L and
trades; :func:`summarise` turns that into a :class:`Diagnostics` record (pure, unit-tested);
:func:`collapse_warning` flags a policy that keeps sitting on HOLD.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.features import N_MARKET, strong_setup
from scalper_shared.schema.training import Diagnostics

logger = logging.getLogger(__name__)

COLLAPSE_HOLD_SHARE = 0.80
COLLAPSE_CHECKPOINTS = 2
EPISODE_PNL_KEY = "episode_pnl"
EPISODE_TRADES_KEY = "episode_trades"
"""Info keys the environment sets at an episode's end (its net P&L and its number of entries)."""
PNL_INFO_KEY = "pnl"
"""Fallback when an env has no episode summary: a step's P&L (else its reward) is summed, and
entries (BUY actions) are counted."""


@dataclass
class Rollout:
    """What one pass over the validation episodes saw, step by step and episode by episode."""

    actions: list[int] = field(default_factory=list)
    setup_sides: list[int] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    episode_pnls: list[float] = field(default_factory=list)
    episode_trades: list[int] = field(default_factory=list)


def summarise(step: int, rollout: Rollout) -> Diagnostics:
    """Shares of HOLD / BUY actions, strong-setup BUY rate, trades per day, P&L and entropy."""
    actions = np.asarray(rollout.actions, dtype=np.int64)
    sides = np.asarray(rollout.setup_sides, dtype=np.int64)
    n = max(len(actions), 1)
    calls = int((actions == Action.BUY_CALL).sum())
    puts = int((actions == Action.BUY_PUT).sum())
    setups = sides != 0
    bought = (actions == Action.BUY_CALL) | (actions == Action.BUY_PUT)
    setup_rate = float((bought & setups).sum() / setups.sum()) if setups.any() else None
    return Diagnostics(
        step=step,
        hold_pct=float((actions == Action.HOLD).sum() / n),
        buy_pct=(calls + puts) / n,
        buy_call_pct=calls / n,
        buy_put_pct=puts / n,
        strong_setup_buy_rate=setup_rate,
        trades_per_day=float(np.mean(rollout.episode_trades)) if rollout.episode_trades else 0.0,
        mean_episode_pnl=float(np.mean(rollout.episode_pnls)) if rollout.episode_pnls else 0.0,
        policy_entropy=float(np.mean(rollout.entropies)) if rollout.entropies else 0.0,
        validation_steps=len(actions),
    )


def collapse_warning(hold_shares: list[float], threshold: float = COLLAPSE_HOLD_SHARE,
                     consecutive: int = COLLAPSE_CHECKPOINTS) -> bool:
    """True when the last ``consecutive`` checkpoints (oldest first) all held above ``threshold``."""
    recent = hold_shares[-consecutive:]
    return len(recent) == consecutive and all(share > threshold for share in recent)


def collect_rollout(model: Any, venv: Any, n_episodes: int, max_steps: int = 1_000_000) -> Rollout:
    """Run ``model``'s deterministic masked policy on ``venv`` until ``n_episodes`` episodes end.

    ``venv`` is an SB3 VecEnv (auto-reset) whose envs answer ``action_masks()``. One episode is one
    symbol's trading day, so trades per episode are trades per day.
    """
    import torch

    rollout = Rollout()
    obs = venv.reset()
    n_envs = venv.num_envs
    pnl = np.zeros(n_envs)
    trades = np.zeros(n_envs, dtype=np.int64)
    for _ in range(max_steps):
        masks = np.stack(venv.env_method("action_masks")).astype(bool)
        actions, entropy = _policy_step(model, obs, masks, torch)
        rollout.actions.extend(int(a) for a in actions)
        rollout.setup_sides.extend(int(s) for s in strong_setup(_current_market_rows(obs)))
        rollout.entropies.extend(float(e) for e in entropy)
        trades += (actions == Action.BUY_CALL) | (actions == Action.BUY_PUT)
        obs, rewards, dones, infos = venv.step(actions)
        pnl += [float(info.get(PNL_INFO_KEY, r)) for info, r in zip(infos, rewards, strict=True)]
        for i in np.flatnonzero(dones):
            rollout.episode_pnls.append(float(infos[i].get(EPISODE_PNL_KEY, pnl[i])))
            rollout.episode_trades.append(int(infos[i].get(EPISODE_TRADES_KEY, trades[i])))
            pnl[i], trades[i] = 0.0, 0
        if len(rollout.episode_pnls) >= n_episodes:
            break
    return rollout


def _current_market_rows(obs: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """The current minute's market features of each observation (last row, market columns)."""
    return np.asarray(obs)[:, -1, :N_MARKET]


def _policy_step(model: Any, obs: npt.NDArray[Any], masks: npt.NDArray[np.bool_],
                 torch: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Argmax actions of the masked distribution and its entropy, for a batch of observations."""
    policy = model.policy
    with torch.no_grad():
        obs_tensor, _ = policy.obs_to_tensor(obs)
        distribution = policy.get_distribution(obs_tensor, action_masks=masks)
        probs = distribution.distribution.probs.cpu().numpy()
        entropy = distribution.entropy().cpu().numpy()
    actions = np.argmax(np.where(masks, probs, -1.0), axis=1).astype(np.int64)
    return actions, entropy.astype(np.float64)
