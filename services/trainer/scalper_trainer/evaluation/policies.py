"""What the evaluation engine can run: the agent (an exported numpy actor) and the baselines.

A :class:`Policy` sees a batch of states (observations, masks, the strong-setup side of the
current bar and the minutes the open position has been held, -1 when flat) and returns one action
per state, plus the action probabilities when it has them (the agent does; the baselines do not).
Every policy is deterministic for a given ``rng``.

Baselines, run on the same days and the same rules as the agent:

* :class:`HoldPolicy`: always HOLD (zero trades, zero P&L: the floor any strategy must clear);
* :class:`RandomMaskedPolicy`: a uniform draw over the allowed actions (seeded);
* :class:`MomentumRulePolicy`: buys the call (put) when the shared strong-setup rule says so and
  otherwise holds: its exits are the risk layer's (stop, take-profit tiers, end of day);
* :class:`EdgeRulePolicy` (``edge_rule``, only where the market has a planted edge): trades the
  synthetic market's ``momentum`` edge by its definition (:mod:`scalper_shared.core.edge`).

Reference policies of the reward audit (:mod:`scalper_trainer.evaluation.audit`) besides those:
:class:`SetupTimedExitPolicy` (every strong setup, EXIT after N minutes) and
:class:`NoSetupPolicy` (buys only where there is no setup).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.arrays import BoolArray, FloatArray, IntArray
from scalper_shared.core.edge import MOMENTUM_EDGE, MarketEdge, MomentumEdge, edge_rule_side
from scalper_shared.core.features.spec import MARKET_INDEX
from scalper_shared.core.policy_net import NumpyPolicy


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        """(N,) actions for N states, and their (N, 6) probabilities or None."""
        ...


def argmax_allowed(probabilities: FloatArray, masks: BoolArray) -> IntArray:
    """The most probable allowed action of each row (ties: the lowest action index)."""
    return np.argmax(np.where(masks, probabilities, -1.0), axis=1).astype(np.int64)


@dataclass(frozen=True)
class AgentPolicy:
    """The trained actor, played deterministically (argmax of the masked distribution)."""

    network: NumpyPolicy
    name: str = "agent"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        probabilities = self.network.probabilities(observations, masks)
        return argmax_allowed(probabilities, masks), probabilities


@dataclass(frozen=True)
class HoldPolicy:
    name: str = "hold"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        return np.full(len(masks), int(Action.HOLD), np.int64), None


@dataclass(frozen=True)
class RandomMaskedPolicy:
    """Uniform over the allowed actions of each state, drawn from the engine's seeded ``rng``."""

    name: str = "random"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        allowed = masks.astype(np.float64)
        probabilities = allowed / allowed.sum(axis=1, keepdims=True)
        draws = rng.random(len(masks))[:, None]
        actions = (draws > np.cumsum(probabilities, axis=1)).sum(axis=1)
        return np.minimum(actions, masks.shape[1] - 1).astype(np.int64), None


@dataclass(frozen=True)
class MomentumRulePolicy:
    """Enter on the shared strong-setup rule (call on +1, put on -1); never exits by itself."""

    name: str = "momentum_rule"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        return enter_on(setup, masks), None


def enter_on(side: npt.ArrayLike, masks: BoolArray) -> IntArray:
    """BUY_CALL where ``side`` > 0, BUY_PUT where < 0, when the mask allows it; HOLD otherwise."""
    side = np.asarray(side)
    wanted = np.where(side > 0, int(Action.BUY_CALL), np.where(side < 0, int(Action.BUY_PUT), int(Action.HOLD)))
    allowed = masks[np.arange(len(masks)), wanted]
    return np.where(allowed, wanted, int(Action.HOLD)).astype(np.int64)


def exit_after(actions: IntArray, held_minutes: IntArray, minutes: int, masks: BoolArray) -> IntArray:
    """``actions`` with EXIT wherever a position has been held ``minutes`` or more (and EXIT is allowed)."""
    due = (held_minutes >= minutes) & masks[:, int(Action.EXIT)]
    return np.where(due, int(Action.EXIT), actions).astype(np.int64)


@dataclass(frozen=True)
class SetupTimedExitPolicy:
    """Buy every strong setup in its direction; EXIT after ``minutes`` (unless the risk layer exits first)."""

    minutes: int
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"setup_exit_{self.minutes}m")

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        return exit_after(enter_on(setup, masks), held_minutes, self.minutes, masks), None


@dataclass(frozen=True)
class NoSetupPolicy:
    """Buy only where there is NO strong setup (call or put at random, seeded); the risk layer exits."""

    name: str = "no_setup"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        side = np.where(rng.random(len(masks)) < 0.5, 1, -1)
        return enter_on(np.where(setup == 0, side, 0), masks), None


@dataclass(frozen=True)
class EdgeRulePolicy:
    """The planted ``momentum`` edge's own rule: after a 5-minute move of at least
    ``rule_trigger_atr`` ATRs, buy in its direction and EXIT after ``rule_hold_minutes``."""

    edge: MomentumEdge = MOMENTUM_EDGE
    name: str = "edge_rule"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: IntArray) -> tuple[IntArray, FloatArray | None]:
        last = observations[:, -1, :]
        side = edge_rule_side(last[:, MARKET_INDEX["ret_5"]], last[:, MARKET_INDEX["atr_pct"]], self.edge)
        return exit_after(enter_on(side, masks), held_minutes, self.edge.rule_hold_minutes, masks), None


def baseline_policies(edge: str = MarketEdge.NONE) -> tuple[Policy, ...]:
    """The baselines every evaluation runs on the agent's days: HOLD, random, the momentum rule,
    and ``edge_rule`` when the market has a planted edge."""
    base: tuple[Policy, ...] = (HoldPolicy(), RandomMaskedPolicy(), MomentumRulePolicy())
    return base if MarketEdge(edge) == MarketEdge.NONE else (*base, EdgeRulePolicy())
