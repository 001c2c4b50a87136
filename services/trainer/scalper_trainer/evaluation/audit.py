"""The reward audit: does a reward rank policies the way after-cost money does?

Reference policies are played over every symbol-day of an episode set by the evaluation engine
(the training environment's own batched core: same masks, fills, premiums, stop, take-profits and
reward terms). For each policy the audit reports the after-cost P&L per symbol-day, the total
shaped reward per symbol-day, every reward term per symbol-day with its share of the reward, and
the Spearman rank correlation between the two orderings of the policies. A reward whose
correlation is below 1 pays some policy more than a policy that made more money. See
``docs/rewards.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from scalper_shared.core.rewards import REWARD_TERMS, RewardConfig
from scalper_trainer.env import EnvConfig, EpisodeSet, MarketTape
from scalper_trainer.evaluation.engine import evaluate
from scalper_trainer.evaluation.policies import (
    EdgeRulePolicy,
    HoldPolicy,
    MomentumRulePolicy,
    NoSetupPolicy,
    Policy,
    RandomMaskedPolicy,
    SetupTimedExitPolicy,
)


def reference_policies() -> tuple[Policy, ...]:
    """The audit's reference policies. ``momentum_rule`` is "buy every strong setup and let the risk
    layer exit" (the evaluation baseline of that name); ``edge_rule`` trades the planted edge's rule
    (on a market without the edge it is one more rule that pays the costs)."""
    return (HoldPolicy(), RandomMaskedPolicy(), MomentumRulePolicy(), SetupTimedExitPolicy(5),
            SetupTimedExitPolicy(15), NoSetupPolicy(), EdgeRulePolicy())


@dataclass(frozen=True)
class PolicyAudit:
    """One policy's money and reward, per symbol-day."""

    pnl_per_symbol_day: float
    reward_per_symbol_day: float
    trades_per_symbol_day: float
    terms: dict[str, float]
    """Each reward term per symbol-day."""

    def term_shares(self) -> dict[str, float]:
        """Each term's signed share of the reward's absolute mass: term / sum(|terms|) (0 when all are 0)."""
        mass = sum(abs(v) for v in self.terms.values())
        return {name: (value / mass if mass > 0 else 0.0) for name, value in self.terms.items()}


@dataclass(frozen=True)
class RewardAudit:
    preset: str
    reward: RewardConfig
    symbol_days: int
    policies: dict[str, PolicyAudit]

    @property
    def spearman(self) -> float | None:
        """Rank correlation of P&L and reward over the policies (None when either is constant)."""
        pnl = [p.pnl_per_symbol_day for p in self.policies.values()]
        reward = [p.reward_per_symbol_day for p in self.policies.values()]
        if len(set(pnl)) < 2 or len(set(reward)) < 2:
            return None
        value = float(spearmanr(pnl, reward).statistic)
        return None if math.isnan(value) else value

    def misranked_pairs(self) -> list[tuple[str, str]]:
        """(a, b) pairs where ``a`` made less money than ``b`` but earned more reward."""
        items = list(self.policies.items())
        return [(a, b) for a, pa in items for b, pb in items
                if pa.pnl_per_symbol_day < pb.pnl_per_symbol_day and pa.reward_per_symbol_day > pb.reward_per_symbol_day]

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset, "symbol_days": self.symbol_days, "spearman": self.spearman,
            "policies": {name: {"pnl_per_symbol_day": p.pnl_per_symbol_day,
                                "reward_per_symbol_day": p.reward_per_symbol_day,
                                "trades_per_symbol_day": p.trades_per_symbol_day,
                                "terms": {term: {"per_symbol_day": p.terms[term], "share": share}
                                          for term, share in p.term_shares().items()}}
                         for name, p in self.policies.items()},
            "misranked_pairs": [list(pair) for pair in self.misranked_pairs()],
        }


def audit_reward(episodes: EpisodeSet | MarketTape, reward: RewardConfig, *, preset: str = "custom",
                 env_config: EnvConfig | None = None, policies: Sequence[Policy] | None = None,
                 seed: int = 0) -> RewardAudit:
    """Play every reference policy on every usable symbol-day of ``episodes`` under ``reward``."""
    config = (env_config or EnvConfig()).model_copy(update={"reward": reward})
    tape = episodes if isinstance(episodes, MarketTape) else MarketTape(episodes, config)
    audits: dict[str, PolicyAudit] = {}
    n = 0
    for policy in policies or reference_policies():
        result = evaluate(policy, tape, config, seed=seed)
        n = result.n_episodes
        if n == 0 or result.episode_reward_terms is None:
            raise ValueError("no usable symbol-day to audit")
        per_day = result.episode_reward_terms.mean(axis=0)
        terms = {name: float(per_day[k]) for k, name in enumerate(REWARD_TERMS)}
        audits[policy.name] = PolicyAudit(
            pnl_per_symbol_day=float(result.episode_pnl.mean()),
            reward_per_symbol_day=float(np.sum(per_day)),
            trades_per_symbol_day=float(result.episode_trades.mean()), terms=terms)
    return RewardAudit(preset, reward, n, audits)
