"""Checkpoint diagnostics: what the policy does on the fixed validation set. See ``docs/diagnostics.md``.

The validation set is every usable validation symbol-day, played once from its warm-up to its close
by the evaluation engine (the same days, order and rules at every checkpoint; deterministic for a
seed). The agent plays as evaluation and the policy API play it: the most probable allowed action.
Along the way :class:`ProbingPolicy` records, for every state, the policy's masked probabilities,
the mask, the strong-setup side and one action sampled from a fixed-seed generator.

:func:`summarise` (pure) turns that trace, the evaluation result and PPO's own statistics into a
:class:`Diagnostics` record. Everything about choosing is measured on *decision steps*: flat with an
entry allowed (the mask admits BUY), the only steps where HOLD vs BUY is a choice at all.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.arrays import BoolArray, FloatArray
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.schema.training import SEED_CRITERIA, Diagnostics, PPOStats
from scalper_trainer.env import EnvConfig, MarketTape
from scalper_trainer.evaluation.engine import EvaluationResult, entropy, evaluate
from scalper_trainer.evaluation.policies import argmax_allowed

COLLAPSE_HOLD_SHARE = 0.80
COLLAPSE_CHECKPOINTS = 2
NOT_LEARNING_MIN_UPDATES = 100
NOT_LEARNING_KL = 1e-3
NOT_LEARNING_ENTROPY_SHARE = 0.95
DECISION_ENTROPY_MAX = math.log(3)
"""On a decision step exactly HOLD, BUY_CALL and BUY_PUT are legal."""
KL_WINDOW = 10
SAMPLE_SEED_OFFSET = 7_919

COLLAPSE_MESSAGE = ("policy collapse: P(HOLD) above 80% on the decision steps of the validation set "
                    "at two checkpoints running")
NOT_LEARNING_MESSAGE = (f"not learning: after {NOT_LEARNING_MIN_UPDATES}+ PPO updates the median approx_kl "
                        f"is below {NOT_LEARNING_KL:g} or the decision-step entropy is above "
                        f"{NOT_LEARNING_ENTROPY_SHARE:.0%} of its maximum ln 3")

_PPO_KEYS = {"approx_kl": "train/approx_kl", "clip_fraction": "train/clip_fraction",
             "explained_variance": "train/explained_variance",
             "policy_gradient_loss": "train/policy_gradient_loss", "value_loss": "train/value_loss",
             "entropy_loss": "train/entropy_loss", "learning_rate": "train/learning_rate"}


@dataclass
class DecisionTrace:
    """Per visited state: masked probabilities (N, 6), masks (N, 6), setup side (N,), a sampled action."""

    probabilities: list[FloatArray] = field(default_factory=list)
    masks: list[BoolArray] = field(default_factory=list)
    setup: list[npt.NDArray[np.int8]] = field(default_factory=list)
    sampled: list[npt.NDArray[np.int64]] = field(default_factory=list)

    def arrays(self) -> tuple[FloatArray, BoolArray, npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        if not self.probabilities:
            return (np.zeros((0, len(Action))), np.zeros((0, len(Action)), bool), np.zeros(0, np.int8),
                    np.zeros(0, np.int64))
        return (np.concatenate(self.probabilities), np.concatenate(self.masks), np.concatenate(self.setup),
                np.concatenate(self.sampled))


def sample_actions(probabilities: FloatArray, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """One action per row drawn from its probabilities (inverse CDF on one uniform per row)."""
    cdf = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None] * cdf[:, -1:]
    return np.minimum((draws >= cdf).sum(axis=1), probabilities.shape[1] - 1).astype(np.int64)


class ProbingPolicy:
    """The agent as evaluation plays it (argmax of the masked distribution), tracing every state."""

    name = "agent"

    def __init__(self, network: NumpyPolicy, sample_seed: int) -> None:
        self.network = network
        self.rng = np.random.default_rng(sample_seed)
        self.trace = DecisionTrace()

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], FloatArray]:
        probabilities = self.network.probabilities(observations, masks)
        self.trace.probabilities.append(probabilities)
        self.trace.masks.append(np.asarray(masks, dtype=bool).copy())
        self.trace.setup.append(np.asarray(setup, dtype=np.int8).copy())
        self.trace.sampled.append(sample_actions(probabilities, self.rng))
        return argmax_allowed(probabilities, masks), probabilities


def play_validation(network: NumpyPolicy, tape: MarketTape, env_config: EnvConfig,
                    seed: int) -> tuple[DecisionTrace, EvaluationResult]:
    """Play ``network`` over every validation symbol-day once; the trace and the evaluation result."""
    policy = ProbingPolicy(network, seed + SAMPLE_SEED_OFFSET)
    result = evaluate(policy, tape, env_config, seed=seed)
    return policy.trace, result


class UpdateLog:
    """PPO's ``train/*`` statistics, one entry per update, read from SB3's logger."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._last_n_updates: float | None = None

    def capture(self, name_to_value: Mapping[str, Any]) -> None:
        """Record the last update's values if they are new (SB3 keeps them until the next dump)."""
        marker = name_to_value.get("train/n_updates")
        if marker is None or marker == self._last_n_updates or "train/approx_kl" not in name_to_value:
            return
        self._last_n_updates = marker
        self.history.append({name: float(name_to_value[key]) for name, key in _PPO_KEYS.items()
                             if key in name_to_value})


def ppo_stats(history: Sequence[Mapping[str, float]], num_timesteps: int, n_envs: int, n_steps: int,
              batch_size: int, n_epochs: int, start_learning_rate: float | None = None) -> PPOStats:
    """Updates and gradient steps done by ``num_timesteps`` (one update after every full rollout of
    ``n_envs x n_steps``) and the medians of the last :data:`KL_WINDOW` updates in ``history``."""
    rollout = n_envs * n_steps
    updates = num_timesteps // rollout
    recent = list(history)[-KL_WINDOW:]
    last = recent[-1] if recent else {}

    def median(name: str) -> float | None:
        values = [h[name] for h in recent if name in h]
        return float(np.median(values)) if values else None

    return PPOStats(updates=updates, gradient_steps=updates * n_epochs * math.ceil(rollout / batch_size),
                    approx_kl=median("approx_kl"), clip_fraction=median("clip_fraction"),
                    explained_variance=last.get("explained_variance"),
                    policy_gradient_loss=last.get("policy_gradient_loss"), value_loss=last.get("value_loss"),
                    entropy_loss=last.get("entropy_loss"), learning_rate=last.get("learning_rate"),
                    learning_rate_share=_share(last.get("learning_rate"), start_learning_rate))


def _share(value: float | None, start: float | None) -> float | None:
    return value / start if value is not None and start else None


class RewardTermTally:
    """Mean per step of each reward term over finished training episodes, since the last reset."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0

    def add_infos(self, infos: Iterable[Mapping[str, Any]]) -> None:
        for info in infos:
            terms = info.get("episode_reward_terms")
            episode = info.get("episode")
            if terms is None or episode is None:
                continue
            self.steps += int(episode["l"])
            for name, value in terms.items():
                self.sums[name] += float(value)

    def means_and_reset(self) -> dict[str, float]:
        means = {name: total / self.steps for name, total in self.sums.items()} if self.steps else {}
        if means:
            means["total"] = sum(means.values())
        self.sums, self.steps = defaultdict(float), 0
        return means


def _mean(values: FloatArray) -> float | None:
    return float(values.mean()) if values.size else None


def summarise(step: int, trace: DecisionTrace, result: EvaluationResult, ppo: PPOStats,
              train_reward_terms: Mapping[str, float] | None = None,
              previous: Sequence[Diagnostics] = ()) -> Diagnostics:
    """The :class:`Diagnostics` of one checkpoint (pure). ``previous``: earlier checkpoints, oldest first."""
    probs, masks, setup, sampled = trace.arrays()
    decision = masks[:, Action.BUY_CALL] if len(masks) else np.zeros(0, bool)
    holding = masks[:, Action.EXIT] if len(masks) else np.zeros(0, bool)
    p = probs[decision]
    buy = p[:, Action.BUY_CALL] + p[:, Action.BUY_PUT]
    argmax = argmax_allowed(p, masks[decision]) if p.size else np.zeros(0, np.int64)
    drawn = sampled[decision]
    side = setup[decision]
    fires = side != 0
    towards = np.where(side > 0, p[:, Action.BUY_CALL], p[:, Action.BUY_PUT])
    setup_rate, nonsetup_rate = _mean(buy[fires]), _mean(buy[~fires])
    in_position = probs[holding]
    holding_minutes = np.array([t.exit_row - t.entry_row for t in result.trades], dtype=np.float64)
    n_symbol_days = max(result.n_episodes, 1)
    account_pnl = _by_day(result)
    diagnostics = Diagnostics(
        step=step, ppo=ppo, validation_steps=len(masks), decision_steps=int(decision.sum()),
        hold_share=_mean(p[:, Action.HOLD]), buy_call_share=_mean(p[:, Action.BUY_CALL]),
        buy_put_share=_mean(p[:, Action.BUY_PUT]), buy_share=_mean(buy),
        sampled_hold_share=_mean((drawn == Action.HOLD).astype(float)),
        sampled_buy_share=_mean(((drawn == Action.BUY_CALL) | (drawn == Action.BUY_PUT)).astype(float)),
        argmax_hold_share=_mean((argmax == Action.HOLD).astype(float)),
        argmax_buy_share=_mean(((argmax == Action.BUY_CALL) | (argmax == Action.BUY_PUT)).astype(float)),
        entropy=_mean(entropy(p)) if p.size else None,
        setup_steps=int(fires.sum()), setup_buy_rate=setup_rate,
        setup_direction_buy_rate=_mean(towards[fires]), nonsetup_buy_rate=nonsetup_rate,
        selectivity=None if setup_rate is None or nonsetup_rate is None else setup_rate - nonsetup_rate,
        position_steps=int(holding.sum()), trim_50_share=_mean(in_position[:, Action.TRIM_50]),
        trim_70_share=_mean(in_position[:, Action.TRIM_70]), exit_share=_mean(in_position[:, Action.EXIT]),
        mean_holding_minutes=_mean(holding_minutes),
        symbol_days=result.n_episodes, account_days=len(account_pnl),
        trades_per_symbol_day=float(result.episode_trades.sum()) / n_symbol_days,
        trades_per_account_day=float(result.episode_trades.sum()) / max(len(account_pnl), 1),
        pnl_per_symbol_day=float(result.episode_pnl.sum()) / n_symbol_days,
        pnl_per_account_day=float(np.mean(list(account_pnl.values()))) if account_pnl else 0.0,
        reward_terms=dict(result.reward_terms), train_reward_terms=dict(train_reward_terms or {}),
        seed_criteria={}, collapse_warning=False, not_learning_warning=False)
    return diagnostics.model_copy(update={
        "seed_criteria": seed_criteria(diagnostics),
        "collapse_warning": collapse_warning([*(d.hold_share for d in previous), diagnostics.hold_share]),
        "not_learning_warning": not_learning_warning(ppo, diagnostics.entropy)})


def _by_day(result: EvaluationResult) -> dict[Any, float]:
    """After-cost P&L per account-day: every symbol of a day summed."""
    days: dict[Any, float] = defaultdict(float)
    for day, pnl in zip(result.days, result.episode_pnl.tolist(), strict=True):
        days[day] += pnl
    return dict(days)


def seed_criteria(diagnostics: Diagnostics) -> dict[str, bool]:
    """The seed run's three criteria, pass/fail (a criterion with no data fails)."""
    checks: dict[str, bool] = {}
    for name, (attribute, op, bound) in SEED_CRITERIA.items():
        value = getattr(diagnostics, attribute)
        checks[name] = value is not None and (value <= bound if op == "<=" else value >= bound)
    return checks


def collapse_warning(hold_shares: Sequence[float | None], threshold: float = COLLAPSE_HOLD_SHARE,
                     consecutive: int = COLLAPSE_CHECKPOINTS) -> bool:
    """True when the last ``consecutive`` checkpoints (oldest first) all had P(HOLD | decision) above
    ``threshold``."""
    recent = list(hold_shares)[-consecutive:]
    return len(recent) == consecutive and all(share is not None and share > threshold for share in recent)


def not_learning_warning(ppo: PPOStats, decision_entropy: float | None) -> bool:
    """True when, after :data:`NOT_LEARNING_MIN_UPDATES` updates, the median approx_kl is below
    :data:`NOT_LEARNING_KL` or the decision-step entropy is above 95% of ln 3. Under a falling learning
    rate the KL bar falls with it (times the share of the starting rate still used): an annealed run's
    last updates are small by design, not stalled."""
    if ppo.updates < NOT_LEARNING_MIN_UPDATES:
        return False
    kl_bar = NOT_LEARNING_KL * (ppo.learning_rate_share if ppo.learning_rate_share is not None else 1.0)
    stalled = ppo.approx_kl is not None and ppo.approx_kl < kl_bar
    uniform = decision_entropy is not None and decision_entropy > NOT_LEARNING_ENTROPY_SHARE * DECISION_ENTROPY_MAX
    return stalled or uniform


def warnings_of(diagnostics: Sequence[Diagnostics]) -> list[str]:
    """The job-level warnings: each message once if any checkpoint raised it."""
    messages = []
    if any(d.collapse_warning for d in diagnostics):
        messages.append(COLLAPSE_MESSAGE)
    if any(d.not_learning_warning for d in diagnostics):
        messages.append(NOT_LEARNING_MESSAGE)
    return messages
