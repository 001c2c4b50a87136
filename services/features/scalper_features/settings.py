"""Settings of the features service (environment and `.env`); see `.env.example`."""

from __future__ import annotations

from pydantic import Field, field_validator

from scalper_shared.settings import ServiceSettings

SYMBOL_PATTERN = r"^[A-Z0-9:.]+(,[A-Z0-9:.]+)*$"


class FeaturesSettings(ServiceSettings):
    http_port: int = Field(8002, ge=1, le=65535, validation_alias="FEATURES_HTTP_PORT")
    symbols: str = Field("SPY,QQQ", pattern=SYMBOL_PATTERN, validation_alias="FEATURES_SYMBOLS",
                         description="Comma-separated symbols whose bars become features (minutes align across them)")
    minute_wait_s: float = Field(5.0, gt=0, le=300, validation_alias="FEATURES_MINUTE_WAIT_S",
                                 description="Seconds a minute waits for the other symbols' bars before it is processed anyway")
    lease_ttl_ms: int = Field(10_000, ge=500, le=600_000, validation_alias="FEATURES_LEASE_TTL_MS",
                              description="The owner's lease lasts this long per renewal (renewed every third of it); "
                                          "a standby takes over at most this long after the owner stopped renewing")

    @field_validator("symbols")
    @classmethod
    def _distinct(cls, value: str) -> str:
        if len(set(value.split(","))) != len(value.split(",")):
            raise ValueError("lists a symbol twice")
        return value

    @property
    def symbol_list(self) -> tuple[str, ...]:
        return tuple(self.symbols.split(","))
