"""Export a trained MaskablePPO actor to :class:`scalper_shared.core.policy_net.NumpyPolicy`."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from scalper_shared.core.policy_net import NumpyPolicy

_ACTIVATION_NAMES = {nn.Tanh: "tanh", nn.ReLU: "relu"}


def export_numpy_policy(model: Any) -> NumpyPolicy:
    """The actor of ``model`` (MaskablePPO with the default flatten extractor) as numpy float64."""
    policy = model.policy
    extractor = type(policy.pi_features_extractor).__name__
    if extractor != "FlattenExtractor":
        raise ValueError(f"only the flatten features extractor can be exported, got {extractor}")
    activation = _ACTIVATION_NAMES.get(policy.activation_fn)
    if activation is None:
        raise ValueError(f"unsupported activation {policy.activation_fn.__name__}")
    hidden = tuple(_linear(layer) for layer in policy.mlp_extractor.policy_net if isinstance(layer, nn.Linear))
    return NumpyPolicy(hidden=hidden, head=_linear(policy.action_net), activation=activation)


def _linear(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    weight = layer.weight.detach().cpu().numpy().astype(np.float64).T.copy()
    bias = layer.bias.detach().cpu().numpy().astype(np.float64).copy()
    return weight, bias
