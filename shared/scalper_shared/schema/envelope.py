"""The versioned envelope every message travels in, and the base class of message payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from scalper_shared.clock import Clock, IdFactory


class Message(BaseModel):
    """A frozen payload. Subclasses set ``TYPE`` (stable wire name) and ``VERSION``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class Envelope(BaseModel):
    """Metadata around one message. ``payload`` holds the typed, frozen message."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type: str
    version: int
    id: str
    ts_event: datetime
    ts_init: datetime
    source: str
    correlation_id: str | None = None
    payload: Any

    @field_validator("ts_event", "ts_init")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        return value


def make_envelope(
    message: Message,
    *,
    source: str,
    clock: Clock,
    ids: IdFactory,
    ts_event: datetime | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """Wrap ``message``; ``ts_event`` defaults to the clock's now (when the event happened)."""
    now = clock.now()
    return Envelope(
        type=message.TYPE,
        version=message.VERSION,
        id=ids(),
        ts_event=ts_event or now,
        ts_init=now,
        source=source,
        correlation_id=correlation_id,
        payload=message,
    )
