"""The policy network as plain numpy: what the policy API and backtests run, without torch.

The trainer exports a MaskablePPO actor (flatten -> MLP -> action logits) into this form
(``scalper_trainer.export``); ``NumpyPolicy`` reproduces SB3's masked categorical exactly:
masked logits are replaced by -1e8 before the softmax, deterministic actions are the argmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from scalper_shared.core.arrays import BoolArray, FloatArray

MASKED_LOGIT = -1e8  # sb3_contrib MaskableCategorical's HUGE_NEG
def _relu(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


ACTIVATIONS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "tanh": np.tanh,
    "relu": _relu,
}



def masked_softmax(logits: FloatArray, mask: BoolArray) -> FloatArray:
    """Row-wise softmax of ``logits`` with masked-out entries at probability 0."""
    masked = np.where(mask, logits, MASKED_LOGIT)
    shifted = masked - masked.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


class _SingleRowNet(NamedTuple):
    input_size: int
    n_actions: int
    hidden: tuple[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], ...]
    head_weight: npt.NDArray[np.float32]
    head_bias: npt.NDArray[np.float32]
    activation: Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class NumpyPolicy:
    """Weights of the actor: hidden layers ``(W, b)`` with W of shape (in, out), then the head."""

    hidden: tuple[tuple[FloatArray, FloatArray], ...]
    head: tuple[FloatArray, FloatArray]
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}")

    @cached_property
    def _single_row(self) -> _SingleRowNet:
        """float32 copies (the precision SB3 trained in) and sizes for the one-observation hot path."""
        layers = tuple((w.astype(np.float32), b.astype(np.float32)) for w, b in (*self.hidden, self.head))
        return _SingleRowNet(self.input_size, self.n_actions, layers[:-1], *layers[-1],
                             ACTIVATIONS[self.activation])

    @property
    def input_size(self) -> int:
        first = self.hidden[0][0] if self.hidden else self.head[0]
        return int(first.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.head[0].shape[1])

    def logits(self, observations: npt.ArrayLike) -> FloatArray:
        """Logits for a batch of observations of any shape whose trailing size is ``input_size``."""
        x = np.asarray(observations, dtype=np.float64)
        x = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
        if x.shape[1] != self.input_size:
            raise ValueError(f"observation has {x.shape[1]} values, the network takes {self.input_size}")
        act = ACTIVATIONS[self.activation]
        for weight, bias in self.hidden:
            x = act(x @ weight + bias)
        return x @ self.head[0] + self.head[1]

    def probabilities(self, observations: npt.ArrayLike, masks: npt.ArrayLike) -> FloatArray:
        masks_arr = np.asarray(masks, dtype=bool).reshape(-1, self.n_actions)
        return masked_softmax(self.logits(observations), masks_arr)

    def act(
        self,
        observation: npt.ArrayLike,
        mask: npt.ArrayLike,
        *,
        deterministic: bool = True,
        rng: np.random.Generator | None = None,
    ) -> tuple[int, FloatArray]:
        """One observation -> (action, probabilities). Sampling needs an explicit ``rng``.

        The API's hot path: the arithmetic of :meth:`probabilities` (float32 layers as SB3 trained,
        masked entries at probability exactly 0) with as few numpy calls as possible; the six-way
        softmax runs on Python floats, cheaper than numpy's per-call overhead.
        """
        net = self._single_row
        x: npt.NDArray[np.floating[Any]] = np.asarray(observation, dtype=np.float32).reshape(-1)
        if x.shape[0] != net.input_size:
            raise ValueError(f"observation has {x.shape[0]} values, the network takes {net.input_size}")
        allowed = np.asarray(mask, dtype=bool).reshape(-1).tolist()
        if len(allowed) != net.n_actions or not any(allowed):
            raise ValueError("the mask allows no action" if len(allowed) == net.n_actions
                             else f"mask has {len(allowed)} entries, the network has {net.n_actions} actions")
        for weight, bias in net.hidden:
            x = net.activation(np.dot(x, weight) + bias)
        logits = (np.dot(x, net.head_weight) + net.head_bias).tolist()
        top = max([v for v, ok in zip(logits, allowed, strict=True) if ok])
        exps = [math.exp(v - top) if ok else 0.0 for v, ok in zip(logits, allowed, strict=True)]
        total = sum(exps)
        shares = [e / total for e in exps]
        probs: FloatArray = np.array(shares)
        if deterministic:  # the first largest probability, as torch.argmax (masked ones are exactly 0)
            return shares.index(max(shares)), probs
        if rng is None:
            raise ValueError("stochastic actions need an explicit rng (determinism)")
        return int(rng.choice(self.n_actions, p=probs)), probs

    def save(self, path: Path) -> None:
        arrays: dict[str, FloatArray] = {"head_w": self.head[0], "head_b": self.head[1]}
        for i, (weight, bias) in enumerate(self.hidden):
            arrays[f"hidden{i}_w"], arrays[f"hidden{i}_b"] = weight, bias
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, activation=np.array(self.activation), n_hidden=np.array(len(self.hidden)),
                 **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NumpyPolicy:
        with np.load(path, allow_pickle=False) as data:
            n_hidden = int(data["n_hidden"])
            hidden = tuple((data[f"hidden{i}_w"], data[f"hidden{i}_b"]) for i in range(n_hidden))
            return cls(hidden=hidden, head=(data["head_w"], data["head_b"]), activation=str(data["activation"]))
