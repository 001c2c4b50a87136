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

import numpy as np
import numpy.typing as npt

MASKED_LOGIT = -1e8  # sb3_contrib MaskableCategorical's HUGE_NEG
def _relu(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.maximum(x, 0.0)


ACTIVATIONS: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]] = {
    "tanh": np.tanh,
    "relu": _relu,
}

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def masked_softmax(logits: FloatArray, mask: BoolArray) -> FloatArray:
    """Row-wise softmax of ``logits`` with masked-out entries at probability 0."""
    masked = np.where(mask, logits, MASKED_LOGIT)
    shifted = masked - masked.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


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
    def _single_row_layers(self) -> tuple[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], ...]:
        """float32 copies (the precision SB3 trained in) for the one-observation hot path."""
        return tuple((w.astype(np.float32), b.astype(np.float32)) for w, b in (*self.hidden, self.head))

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
        return x @ self.head[0] + self.head[1]  # type: ignore[no-any-return]

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

        A lean single-row path (the API's hot path): the same arithmetic as :meth:`probabilities`.
        """
        x = np.asarray(observation, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.input_size:
            raise ValueError(f"observation has {x.shape[0]} values, the network takes {self.input_size}")
        mask_row = np.asarray(mask, dtype=bool).reshape(-1)
        if mask_row.shape[0] != self.n_actions or not mask_row.any():
            raise ValueError("the mask allows no action" if mask_row.shape[0] == self.n_actions
                             else f"mask has {mask_row.shape[0]} entries, the network has {self.n_actions} actions")
        activation = ACTIVATIONS[self.activation]
        x = x.astype(np.float32)
        for weight, bias in self._single_row_layers[:-1]:
            x = activation(x @ weight + bias)
        head_weight, head_bias = self._single_row_layers[-1]
        # Six numbers: plain Python is faster than numpy's per-call overhead here.
        allowed = mask_row.tolist()
        raw = (x @ head_weight + head_bias).tolist()
        logits = [v if ok else MASKED_LOGIT for v, ok in zip(raw, allowed, strict=True)]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        probs: FloatArray = np.array([e / total for e in exps])
        if deterministic:
            return max((i for i in range(len(allowed)) if allowed[i]), key=lambda i: probs[i]), probs
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
