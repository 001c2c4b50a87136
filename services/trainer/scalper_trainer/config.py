"""The training job's config (defined in ``scalper_shared.schema.training``) and its SB3 translation."""

from __future__ import annotations

from typing import Any

from scalper_shared.schema.training import MILESTONE_STEPS, PPOConfig, TrainConfig

__all__ = ["MILESTONE_STEPS", "DeviceUnavailable", "PPOConfig", "TrainConfig", "maskable_ppo_kwargs",
           "resolve_device"]


class DeviceUnavailable(RuntimeError):
    """The job asked for a device this worker does not have."""


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error
    (a job never runs silently on another device than the one it asked for)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("device 'cuda' was requested but this worker's torch sees no CUDA device "
                                "(torch.cuda.is_available() is False); submit with device 'auto' or 'cpu', "
                                "or run the job on a GPU worker")
    return requested


def maskable_ppo_kwargs(config: TrainConfig,
                        observation_stats: tuple[list[float], list[float]] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``MaskablePPO(...)`` for ``config`` (policy, env and logger excluded).

    With ``ppo.normalize_observations`` the policy standardises its inputs with ``observation_stats``
    (mean, std from :func:`scalper_trainer.normalise.observation_stats` on the training days)."""
    from stable_baselines3.common.utils import LinearSchedule
    from torch import nn

    ppo = config.ppo
    activation = {"tanh": nn.Tanh, "relu": nn.ReLU}[ppo.activation]
    policy_kwargs: dict[str, Any] = {"net_arch": list(ppo.net_arch), "activation_fn": activation}
    if ppo.normalize_observations:
        from scalper_trainer.normalise import StandardisedFlatten

        if observation_stats is None:
            raise ValueError("ppo.normalize_observations needs the training days' observation statistics")
        mean, std = observation_stats
        policy_kwargs |= {"features_extractor_class": StandardisedFlatten,
                          "features_extractor_kwargs": {"mean": list(mean), "std": list(std)}}
    return {
        "learning_rate": (LinearSchedule(ppo.learning_rate, 0.0, 1.0) if ppo.learning_rate_schedule == "linear"
                          else ppo.learning_rate),
        "n_steps": ppo.n_steps,
        "batch_size": ppo.batch_size,
        "n_epochs": ppo.n_epochs,
        "gamma": ppo.gamma,
        "gae_lambda": ppo.gae_lambda,
        "clip_range": ppo.clip_range,
        "ent_coef": ppo.ent_coef,
        "vf_coef": ppo.vf_coef,
        "max_grad_norm": ppo.max_grad_norm,
        "policy_kwargs": policy_kwargs,
        "seed": config.seed,
        "device": resolve_device(config.device),
    }
