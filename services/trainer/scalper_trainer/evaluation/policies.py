"""What the evaluation engine can run: the agent (an exported numpy actor) and the baselines.

A :class:`Policy` sees a batch of states (observations, masks and the strong-setup side of the
current bar) and returns one action per state, plus the action probabilities when it has them
(the agent does; the baselines do not). Every policy is deterministic for a given ``rng``.

Baselines, run on the same days and the same rules as the agent:

* :class:`HoldPolicy`: always HOLD (zero trades, zero P&L: the floor any strategy must clear);
* :class:`RandomMaskedPolicy`: a uniform draw over the allowed actions (seeded);
* :class:`MomentumRulePolicy`: buys the call (put) when the shared strong-setup rule says so and
  otherwise holds: its exits are the risk layer's (stop, take-profit tiers, end of day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.policy_net import NumpyPolicy

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator) -> tuple[IntArray, FloatArray | None]:
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
               rng: np.random.Generator) -> tuple[IntArray, FloatArray | None]:
        probabilities = self.network.probabilities(observations, masks)
        return argmax_allowed(probabilities, masks), probabilities


@dataclass(frozen=True)
class HoldPolicy:
    name: str = "hold"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator) -> tuple[IntArray, FloatArray | None]:
        return np.full(len(masks), int(Action.HOLD), np.int64), None


@dataclass(frozen=True)
class RandomMaskedPolicy:
    """Uniform over the allowed actions of each state, drawn from the engine's seeded ``rng``."""

    name: str = "random"

    def decide(self, observations: npt.NDArray[np.float32], masks: BoolArray, setup: npt.NDArray[np.int8],
               rng: np.random.Generator) -> tuple[IntArray, FloatArray | None]:
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
               rng: np.random.Generator) -> tuple[IntArray, FloatArray | None]:
        wanted = np.where(setup > 0, int(Action.BUY_CALL), np.where(setup < 0, int(Action.BUY_PUT), int(Action.HOLD)))
        allowed = masks[np.arange(len(masks)), wanted]
        return np.where(allowed, wanted, int(Action.HOLD)).astype(np.int64), None


def baseline_policies() -> tuple[Policy, ...]:
    """The three baselines every evaluation runs on the agent's days."""
    return (HoldPolicy(), RandomMaskedPolicy(), MomentumRulePolicy())
