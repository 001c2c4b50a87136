"""Settings of the features service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class FeaturesSettings(ServiceSettings):
    http_port: int = Field(8002, ge=1, le=65535, validation_alias="FEATURES_HTTP_PORT")
