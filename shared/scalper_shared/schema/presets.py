"""Named training presets: PPO hyperparameters, rollout width and reward weights, as data.

A :class:`~scalper_shared.schema.training.TrainConfig` names one preset (``preset``, default
``"default"``); every field the request leaves out is taken from it, so a saved config is always
complete and explicit. ``--preset NAME`` in ``scalper train`` and ``"preset"`` in the REST body pick
one. The presets:

* ``default``: the project's defaults, chosen by measurement (``python -m bench learning``; the
  table is in the README). Enough gradient work per sample for PPO to move the policy
  (small rollouts of 16 x 256 steps, minibatches of 256, 10 epochs), a learning rate of 1e-4
  (3e-4 moved as far but oscillated: approx_kl 3e-2, P(HOLD) back from 0.87 to 0.54 between 500k
  and 1M) falling linearly to 0 over the run (the learning proofs, ``docs/rewards.md``) and a
  small entropy bonus (0.01).
* ``seed``: the prior research run this project started from, kept for reproduction: its entropy
  coefficient 0.08 and its shaped reward weights (``rewards.SEED_REWARD_CONFIG``) with a constant
  learning rate, as the seed run trained, and the default rollouts. Two choices are ours, measured
  so that the agent learns the setup as the seed run reports: ``gamma`` 0.9 (under 0.99 it bought
  on most minutes without a setup) and a rate of 2e-4 (the runs and their spread over training
  seeds: ``docs/diagnostics.md``, "Reproduced").
* ``legacy``: the PPO settings this project shipped before the learning study (128 x 64 rollouts,
  batch 4,096, 4 epochs, ent_coef 0.08): 488 gradient steps in 500k samples, which barely moves
  the policy. Kept only as the comparison point of the benchmark.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scalper_shared.core import rewards


class PPOConfig(BaseModel):
    """MaskablePPO hyperparameters, with Stable-Baselines3's names and meanings.

    One PPO *update* follows every rollout of ``n_envs x n_steps`` samples (``n_envs`` lives on the
    TrainConfig); it runs ``n_epochs`` passes over the rollout in minibatches of ``batch_size``, so
    an update is ``n_epochs x ceil(n_envs x n_steps / batch_size)`` gradient steps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(1e-4, gt=0, description=(
        "Adam step size; the start of the schedule when `learning_rate_schedule` is linear. 1e-4: 3e-4 "
        "moved the policy as far but oscillated (approx_kl 3e-2) in `python -m bench learning`"))
    learning_rate_schedule: Literal["constant", "linear"] = Field("linear", description=(
        "`linear`: the step size falls linearly from `learning_rate` to 0 over the run (Stable-Baselines3's "
        "`LinearSchedule`), so the final policy is not one noisy iterate; with a constant 1e-4 the argmax "
        "agent kept 7-10 trades a day of false entries (docs/rewards.md, \"Learning proofs\"). `constant`: "
        "the seed and legacy presets, as the seed run trained"))
    n_steps: int = Field(256, gt=1, description=(
        "Steps (minutes) each environment collects per rollout; a rollout is `n_envs x n_steps` samples "
        "(4,096 with the default 16 environments)"))
    batch_size: int = Field(256, gt=1, description=(
        "Samples per minibatch (one gradient step); at most `n_envs x n_steps`. Small minibatches give "
        "16 gradient steps per epoch of a default rollout"))
    n_epochs: int = Field(10, gt=0, description=(
        "Passes over each rollout per update. 10 over small minibatches moves the policy; the legacy "
        "4 epochs of 4,096-sample batches made 488 gradient steps in 500k samples and barely did"))
    gamma: float = Field(0.99, gt=0, le=1, description=(
        "Discount per one-minute step: a reward 69 minutes ahead counts half. The `seed` preset uses 0.9 (7 "
        "minutes): under its shaped reward a longer horizon pays buying anywhere (docs/diagnostics.md)"))
    gae_lambda: float = Field(0.95, gt=0, le=1, description=(
        "GAE's bias/variance trade-off of the advantage estimate (Stable-Baselines3's default)"))
    clip_range: float = Field(0.2, gt=0, description=(
        "PPO's clip of the new/old action-probability ratio (Stable-Baselines3's default)"))
    ent_coef: float = Field(0.01, ge=0, description=(
        "Entropy bonus weight (exploration pressure). 0.01 is a small bonus; the `seed` and `legacy` "
        "presets use the seed run's 0.08"))
    vf_coef: float = Field(0.5, ge=0, description="Value-loss weight in the joint loss (Stable-Baselines3's default)")
    max_grad_norm: float = Field(0.5, gt=0, description=(
        "Clip of the gradient's global L2 norm (Stable-Baselines3's default)"))
    net_arch: tuple[int, ...] = Field((64, 64), min_length=1, description=(
        "Hidden layer widths of the policy and of the value MLP (two separate networks of these widths)"))
    activation: Literal["tanh", "relu"] = Field("tanh", description=(
        "Hidden-layer activation (tanh: Stable-Baselines3's default for PPO)"))
    normalize_observations: bool = Field(False, description=(
        "Standardise every observation input by its mean and std on the training days (fixed at the job's "
        "start, folded into the first layer at export). Off: it did not help the learning proofs "
        "(docs/rewards.md, \"Learning proofs\")"))


class Preset(BaseModel):
    """One named starting point of a training job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    n_envs: int = Field(gt=0, le=1024)
    ppo: PPOConfig
    reward: rewards.RewardConfig


DEFAULT_PPO = PPOConfig()
SEED_PPO = DEFAULT_PPO.model_copy(update={"ent_coef": 0.08, "learning_rate_schedule": "constant", "gamma": 0.9,
                                          "learning_rate": 2e-4})
"""The ``seed`` preset's PPO: the seed run's ent_coef and constant rate; gamma and the rate are ours, measured."""

PRESETS: dict[str, Preset] = {
    preset.name: preset for preset in (
        Preset(name="default", description="Measured defaults: PPO that updates, small entropy bonus",
               n_envs=16, ppo=DEFAULT_PPO, reward=rewards.DEFAULT_REWARD_CONFIG),
        Preset(name="seed", description="The seed research run: its shaped reward, ent_coef 0.08 (gamma 0.9, 2e-4)",
               n_envs=16, ppo=SEED_PPO, reward=rewards.SEED_REWARD_CONFIG),
        Preset(name="legacy", description="Pre-study PPO settings (few gradient steps); comparison only",
               n_envs=128, ppo=PPOConfig(n_steps=64, batch_size=4096, n_epochs=4, ent_coef=0.08,
                             learning_rate_schedule="constant"),
               reward=rewards.SEED_REWARD_CONFIG),
    )
}
DEFAULT_PRESET = "default"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ValueError naming the known presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
