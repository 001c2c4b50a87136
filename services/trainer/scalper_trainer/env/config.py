"""The environment's configuration: one frozen object, saved with every model (``model_dump``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.core.rewards import RewardConfig
from scalper_shared.core.risk import RiskConfig


class EpisodeSampling(BaseModel):
    """How an episode (one symbol-session) is drawn at every reset.

    The episode index is uniform over the usable episodes; the first decision is at session row
    ``start_row`` (default: the features' warm-up, 35 minutes after the first bar) plus a uniform
    offset in ``0..random_start_minutes``. A session needs ``min_steps`` decisions to be usable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    start_row: int = Field(default=FEATURE_SPEC.warmup, ge=0)
    """Session row (minutes after the first bar) of the first decision: the features' warm-up, the
    first row whose every feature is defined; the live policy takes no decision before it either."""
    random_start_minutes: int = Field(default=0, ge=0)
    """Upper bound of a uniform offset added to ``start_row`` at each reset (0: every episode starts at
    the same minute, as the live policy does)."""
    min_steps: int = Field(default=30, ge=1)
    """Decisions a session needs to be used as an episode (shorter sessions are skipped)."""


class EnvConfig(BaseModel):
    """Everything that defines the trading environment's dynamics and reward.

    ``risk.contracts_per_entry`` are bought on every entry (``BUY_CALL``/``BUY_PUT``), at the ATM
    strike of the bar. Risk (and sizing), premium and reward parameters are the shared core's own configs, so a model trained here
    is judged by the exact rules execution enforces.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    risk: RiskConfig = RiskConfig()
    """Risk rules and entry size: the job's ``TrainConfig.risk``, the very config execution enforces."""
    premium: PremiumModelConfig = PremiumModelConfig()
    """Option-premium model that prices every fill and mark (the job's ``TrainConfig.premium``)."""
    reward: RewardConfig = RewardConfig()
    """Reward weights (the job's ``TrainConfig.reward``)."""
    sampling: EpisodeSampling = EpisodeSampling()
    """How each episode (one symbol-session) is drawn at reset."""
    end_when_no_decision_left: bool = True
    """End a (training) episode as soon as it is flat and no entry can be allowed again that day
    (entry cutoff, trade cap or daily loss limit: ``risk.entries_over_for_the_day``). The steps
    after it would only teach the value of HOLD where HOLD is the only legal action. Evaluation
    switches it off and plays every day to its close."""
    skip_minutes_without_decision: bool = True
    """While flat in a cooldown (entries blocked for a few minutes), move on to the next minute with a
    decision within the same step. Those minutes have HOLD as the only legal action and, flat, earn
    no reward. Evaluation switches it off and plays every minute."""
    step_reward_terms: bool = False
    """Also put every reward term of every step in ``info["reward_terms"]``. The per-episode sums of
    every term are always in ``info["episode_reward_terms"]`` when an episode ends; per-step dicts
    cost the batched env about a third of its speed, so they are off for training."""


    @property
    def contracts(self) -> int:
        """Contracts per entry (``risk.contracts_per_entry``)."""
        return self.risk.contracts_per_entry


DEFAULT_ENV_CONFIG = EnvConfig()
