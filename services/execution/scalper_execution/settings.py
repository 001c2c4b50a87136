"""Settings of the execution service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from scalper_execution.live import LiveSettingsMixin
from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.core.risk import RiskConfig
from scalper_shared.runtime.api_security import ApiSettingsMixin
from scalper_shared.settings import ServiceSettings


class ExecutionSettings(ServiceSettings, ApiSettingsMixin, LiveSettingsMixin):
    http_port: int = Field(8003, ge=1, le=65535, validation_alias="EXECUTION_HTTP_PORT")
    broker: Literal["paper", "alpaca"] = Field("paper", validation_alias="EXECUTION_BROKER",
                                               description="Where orders go: the paper broker or Alpaca (live.py)")
    order_rate_limit: str = Field("100/1s", validation_alias="EXECUTION_ORDER_RATE_LIMIT")
    risk_config: dict[str, Any] = Field(
        default_factory=dict, validation_alias="EXECUTION_RISK_CONFIG",
        description="JSON of RiskConfig fields (limits, stop, tiers, contracts_per_entry); unset fields keep "
                    "their defaults. It must equal the promoted model's saved config")
    premium_config: dict[str, Any] = Field(
        default_factory=dict, validation_alias="EXECUTION_PREMIUM_CONFIG",
        description="JSON of PremiumModelConfig fields (quotes, strikes, fees of the paper broker); unset fields "
                    "keep their defaults. It must equal the promoted model's saved premium config")
    allow_model_risk_mismatch: bool = Field(
        False, validation_alias="EXECUTION_ALLOW_MODEL_RISK_MISMATCH",
        description="Act on a model whose saved risk or premium config differs from EXECUTION_RISK_CONFIG "
                    "or EXECUTION_PREMIUM_CONFIG")
    decision_bar_wait_ms: int = Field(5000, ge=0, validation_alias="EXECUTION_DECISION_BAR_WAIT_MS",
                                      description="How long a decision waits for its own bar to reach execution")
    decision_tolerance_minutes: float = Field(
        2.0, gt=0, le=60, validation_alias="EXECUTION_DECISION_TOLERANCE_MINUTES",
        description="A decision whose minute is further than this from its symbol's newest bar is denied")
    bar_clock_allowance_s: float = Field(
        60.0, ge=0, le=3600, validation_alias="EXECUTION_BAR_CLOCK_ALLOWANCE_S",
        description="A bar whose close is later than the clock plus this is refused (clock skew allowance)")
    reconcile_interval_ms: int = Field(250, gt=0, validation_alias="EXECUTION_RECONCILE_INTERVAL_MS")
    paper_deterministic: bool = Field(True, validation_alias="PAPER_DETERMINISTIC")
    paper_latency_ms: int = Field(0, ge=0, validation_alias="PAPER_LATENCY_MS")
    paper_slippage_ticks: int = Field(0, ge=0, validation_alias="PAPER_SLIPPAGE_TICKS")

    @field_validator("risk_config")
    @classmethod
    def _valid_risk(cls, value: dict[str, Any]) -> dict[str, Any]:
        RiskConfig.model_validate(value)
        return value

    @field_validator("premium_config")
    @classmethod
    def _valid_premium(cls, value: dict[str, Any]) -> dict[str, Any]:
        PremiumModelConfig.model_validate(value)
        return value

    @property
    def risk(self) -> RiskConfig:
        return RiskConfig.model_validate(self.risk_config)

    @property
    def premium(self) -> PremiumModelConfig:
        return PremiumModelConfig.model_validate(self.premium_config)

    @field_validator("order_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        RateLimit.parse(value)
        return value
