"""Export a trained MaskablePPO actor to :class:`scalper_shared.core.policy_net.NumpyPolicy`."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from scalper_shared.core.policy_net import NumpyPolicy
from scalper_trainer.normalise import fold_into_first_layer

_ACTIVATION_NAMES = {nn.Tanh: "tanh", nn.ReLU: "relu"}


def export_numpy_policy(model: Any) -> NumpyPolicy:
    """The actor of ``model`` (MaskablePPO with the flatten or the standardised flatten extractor) as numpy
    float64; the standardisation is folded into the first layer, so the policy reads raw observations."""
    policy = model.policy
    extractor = policy.pi_features_extractor
    name = type(extractor).__name__
    if name not in ("FlattenExtractor", "StandardisedFlatten"):
        raise ValueError(f"only the flatten features extractors can be exported, got {name}")
    activation = _ACTIVATION_NAMES.get(policy.activation_fn)
    if activation is None:
        raise ValueError(f"unsupported activation {policy.activation_fn.__name__}")
    hidden = tuple(_linear(layer) for layer in policy.mlp_extractor.policy_net if isinstance(layer, nn.Linear))
    if name == "StandardisedFlatten":
        mean, std = (getattr(extractor, k).detach().cpu().numpy().astype(np.float64) for k in ("mean", "std"))
        hidden = (fold_into_first_layer(*hidden[0], mean, std), *hidden[1:])
    return NumpyPolicy(hidden=hidden, head=_linear(policy.action_net), activation=activation)


def _linear(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    weight = layer.weight.detach().cpu().numpy().astype(np.float64).T.copy()
    bias = layer.bias.detach().cpu().numpy().astype(np.float64).copy()
    return weight, bias
