"""Settings of the policy service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class PolicySettings(ServiceSettings):
    http_port: int = Field(8000, ge=1, le=65535, validation_alias="POLICY_HTTP_PORT")
