"""Action-probability stability across training checkpoints, on the same evaluation states.

Each checkpoint's actor (exported to numpy) is run on one fixed sample of the states the final
model saw during the evaluation; we report each checkpoint's mean action distribution, argmax
shares and entropy, and the KL divergence between consecutive checkpoints and to the final model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_trainer.checkpoints import CheckpointStore
from scalper_trainer.evaluation.engine import entropy
from scalper_trainer.evaluation.metrics import kl_divergence
from scalper_trainer.evaluation.policies import argmax_allowed

logger = logging.getLogger(__name__)

MAX_CHECKPOINTS = 8


def checkpoint_networks(artifacts_dir: Path, job_id: str, limit: int = MAX_CHECKPOINTS) -> list[tuple[str, NumpyPolicy]]:
    """(label, actor) of up to ``limit`` checkpoints of ``job_id``, evenly spread, oldest first."""
    checkpoints = CheckpointStore(artifacts_dir / "jobs" / job_id / "checkpoints").all()
    if not checkpoints:
        return []
    from sb3_contrib import MaskablePPO

    from scalper_trainer.export import export_numpy_policy

    chosen = sorted({round(i) for i in np.linspace(0, len(checkpoints) - 1, min(limit, len(checkpoints)))})
    out = []
    for index in chosen:
        checkpoint = checkpoints[index]
        model = MaskablePPO.load(checkpoint.path, device="cpu")
        out.append((f"step {checkpoint.step:,}", export_numpy_policy(model)))
    logger.info("job %s: %d of %d checkpoints loaded for the stability metrics", job_id, len(out), len(checkpoints))
    return out


def checkpoint_stability(networks: Sequence[tuple[str, NumpyPolicy]],
                         states: tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]] | None) -> dict[str, Any]:
    """Per checkpoint: mean probabilities, argmax shares, entropy; KL to the previous one and to the last."""
    if not networks or states is None or len(states[1]) == 0:
        return {"states": 0, "checkpoints": []}
    observations, masks = states
    probabilities = [network.probabilities(observations, masks) for _, network in networks]
    final = probabilities[-1]
    rows = []
    for k, ((label, _), p) in enumerate(zip(networks, probabilities, strict=True)):
        shares = np.bincount(argmax_allowed(p, masks), minlength=len(Action)) / len(masks)
        rows.append({
            "label": label,
            "mean_probabilities": {a.name: float(p[:, a].mean()) for a in Action},
            "argmax_shares": {a.name: float(shares[a]) for a in Action},
            "mean_entropy": float(entropy(p).mean()),
            "kl_to_previous": None if k == 0 else kl_divergence(probabilities[k - 1], p),
            "kl_to_final": kl_divergence(final, p),
        })
    return {"states": int(len(masks)), "checkpoints": rows}
