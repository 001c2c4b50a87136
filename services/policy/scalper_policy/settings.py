"""Settings of the policy service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.runtime.api_security import ApiSettingsMixin
from scalper_shared.settings import ServiceSettings


class PolicySettings(ApiSettingsMixin, ServiceSettings):
    http_port: int = Field(8000, ge=1, le=65535, validation_alias="POLICY_HTTP_PORT")
    training_job_timeout_s: int = Field(
        86_400, gt=0, validation_alias="TRAINING_JOB_TIMEOUT_S",
        description="RQ timeout of one attempt of a training job")
    training_job_retries: int = Field(3, ge=0, validation_alias="TRAINING_JOB_RETRIES",
                                      description="Retries of a failed or abandoned training job")
    training_result_ttl_s: int = Field(30 * 86_400, gt=0, validation_alias="TRAINING_RESULT_TTL_S",
                                       description="How long finished and failed jobs stay visible")
    model_poll_s: float = Field(1.0, gt=0, le=300, validation_alias="POLICY_MODEL_POLL_S",
                                description="Seconds between checks of the models table for a newly promoted model")
    decisions_enabled: bool = Field(True, validation_alias="POLICY_DECISIONS_ENABLED",
                                    description="Consume features.vectors and publish policy.decisions")
    decision_max_age_s: float = Field(120.0, gt=0, validation_alias="POLICY_DECISION_MAX_AGE_S",
                                      description="Feature vectors older than this update the window but get no decision")
    decision_claim_ttl_s: int = Field(172_800, gt=0, validation_alias="POLICY_DECISION_CLAIM_TTL_S",
                                      description="Lifetime of the once-per-(model, symbol, minute) decision keys")
