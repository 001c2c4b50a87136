"""Settings of the execution service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class ExecutionSettings(ServiceSettings):
    http_port: int = Field(8003, ge=1, le=65535, validation_alias="EXECUTION_HTTP_PORT")
