"""Settings of the ingestion service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    http_port: int = Field(8001, ge=1, le=65535, validation_alias="INGESTION_HTTP_PORT")
