"""Settings shared by every service: read from the environment and ``.env``, validated at start.

Each service subclasses :class:`ServiceSettings` with its own fields; :func:`load_settings`
turns a validation failure into one clear line that names the environment variable and its value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scalper"


class SettingsError(SystemExit):
    """Raised at start-up for a bad setting; exits the process with a message naming the variable."""


class ServiceSettings(BaseSettings):
    """Variables every service reads. Names are the upper-case field names (``REDIS_URL`` ...)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    redis_url: str = Field(DEFAULT_REDIS_URL, description="Redis server for streams and RQ")
    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL (postgresql+psycopg)")
    artifacts_dir: Path = Field(Path("var/artifacts"), description="Model artifacts directory")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP server binds")
    stream_prefix: str = Field("", description="Prefix of every stream key and RQ queue name (isolates tests/tenants)")
    stream_maxlen: int = Field(1_000_000, gt=0, description="Approximate MAXLEN of produced streams")
    consumer_batch_size: int = Field(100, gt=0, le=10_000)
    consumer_block_ms: int = Field(1000, ge=0)
    consumer_claim_idle_ms: int = Field(30_000, gt=0, description="Reclaim entries idle this long")
    consumer_max_deliveries: int = Field(5, gt=0, description="Dead-letter after this many failed deliveries")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL (postgresql+psycopg://user@host:port/db)")
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://"):]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://"):]
        return value


S = TypeVar("S", bound=BaseSettings)


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` (its alias if it has one)."""
    info = settings_cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    return (prefix + field).upper()


def load_settings(settings_cls: type[S], **overrides: object) -> S:
    """Build settings or exit with ``bad setting NAME=value: reason`` for each bad variable."""
    try:
        return settings_cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = env_name(settings_cls, field)
            value = os.environ.get(name, error.get("input"))
            lines.append(f"bad setting {name}={value!r}: {error['msg']}")
        raise SettingsError("\n".join(lines)) from None
