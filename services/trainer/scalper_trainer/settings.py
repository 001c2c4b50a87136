"""Settings of the trainer service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field

from scalper_shared.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    http_port: int = Field(8004, ge=1, le=65535, validation_alias="TRAINER_HTTP_PORT")
