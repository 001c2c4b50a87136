"""The stream registry: every Redis stream, the message types on it, its producer and its consumer groups.

The one place stream names are spelled and the one source of consumer group names. The bus holds
every service to it: ``StreamProducer`` refuses a stream or a message type not registered here and
``ConsumerRunner`` a group not registered on its stream (and dead-letters entries of other types);
``docs/streams.md`` is generated from it (``scalper docs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from scalper_shared.schema.envelope import Message
from scalper_shared.schema.messages import (
    Bar,
    FeatureVector,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    PolicyDecision,
    PositionState,
    SubmitOrder,
    TradingStateChanged,
)

MD_BARS = "md.bars"
FEATURES_VECTORS = "features.vectors"
POLICY_DECISIONS = "policy.decisions"
ORDERS_EVENTS = "orders.events"
POSITIONS_STATE = "positions.state"

DEAD_LETTER_SUFFIX = ".dlq"

FEATURE_SPEC_HASH_KEY = "features:spec_hash"
"""Redis key (with the stream prefix) where the feature service records the spec hash it computes;
the policy service refuses a model trained on another spec."""


class StreamError(ValueError):
    """A stream, message type or consumer group that the registry does not list."""


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """A consumer group on a stream, owned by one service (one group per consuming service)."""

    name: str
    service: str
    purpose: str


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: what travels on it, the service that writes it and the groups that read it."""

    name: str
    messages: tuple[type[Message], ...]
    producer: str
    about: str
    groups: tuple[ConsumerGroup, ...] = ()

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(message.TYPE for message in self.messages)

    @property
    def dead_letter(self) -> str | None:
        """The dead-letter stream its groups' runners write, or None when no group reads it."""
        return dead_letter(self.name) if self.groups else None


REGISTRY: Mapping[str, StreamSpec] = MappingProxyType({spec.name: spec for spec in (
    StreamSpec(MD_BARS, (Bar,), "ingestion",
               "One validated 1-minute bar per symbol-minute, published after it is committed to `bars`. "
               "`scalper ingest replay`, `scalper paper` and the demo replay stored bars into it.",
               (ConsumerGroup("features", "features", "computes the feature vector of every minute"),
                ConsumerGroup("execution", "execution", "marks positions, fires stops and take-profits"))),
    StreamSpec(FEATURES_VECTORS, (FeatureVector,), "features",
               "The feature vector of one symbol-minute, in the order of its spec hash.",
               (ConsumerGroup("policy", "policy", "decides on every vector with the promoted model"),)),
    StreamSpec(POLICY_DECISIONS, (PolicyDecision,), "policy",
               "What the promoted model chose for one symbol-minute, under its action mask "
               "(at most once per model, symbol and minute).",
               (ConsumerGroup("execution", "execution", "turns decisions into risk-checked orders"),)),
    StreamSpec(ORDERS_EVENTS, (OrderAccepted, OrderFilled, OrderDenied, OrderCanceled, TradingStateChanged),
               "execution",
               "Order events and trading-state changes, published after they are committed. No service "
               "reads it: it is the live audit trail (the same events are in PostgreSQL)."),
    StreamSpec(POSITIONS_STATE, (PositionState,), "execution",
               "The position held on one underlying after every change.",
               (ConsumerGroup("policy", "policy", "keeps the position part of the observation and mask"),)),
)})

ALL = tuple(REGISTRY)

OFF_STREAM: Mapping[type[Message], str] = MappingProxyType({
    SubmitOrder: "a command inside execution (engine to broker), kept in the `orders` table",
})
"""Message types that travel on no stream, and why."""


def dead_letter(stream: str) -> str:
    """The dead-letter stream of ``stream``."""
    return stream + DEAD_LETTER_SUFFIX


def spec(stream: str) -> StreamSpec:
    """The registered stream ``stream``; StreamError otherwise."""
    found = REGISTRY.get(stream)
    if found is not None:
        return found
    if stream.endswith(DEAD_LETTER_SUFFIX) and stream[:-len(DEAD_LETTER_SUFFIX)] in REGISTRY:
        raise StreamError(f"{stream} is a dead-letter stream: only the consumer runner writes it")
    raise StreamError(f"unknown stream {stream!r}; registered: {', '.join(REGISTRY)}")


def check_message(stream: str, type_name: str) -> None:
    """StreamError unless messages of type ``type_name`` are registered on ``stream``."""
    allowed = spec(stream).type_names
    if type_name not in allowed:
        raise StreamError(f"message type {type_name!r} is not registered on stream {stream} "
                          f"(it carries: {', '.join(allowed)})")


def check_group(stream: str, group: str) -> ConsumerGroup:
    """The registered group ``group`` of ``stream``; StreamError otherwise."""
    groups = spec(stream).groups
    for registered in groups:
        if registered.name == group:
            return registered
    names = ", ".join(g.name for g in groups) or "none"
    raise StreamError(f"consumer group {group!r} is not registered on stream {stream} (its groups: {names})")


def group_of(service: str, stream: str) -> str:
    """The name of ``service``'s consumer group on ``stream``; StreamError when it reads no such stream."""
    for registered in spec(stream).groups:
        if registered.service == service:
            return registered.name
    raise StreamError(f"service {service!r} has no consumer group on stream {stream}")


def consumed_by(service: str) -> tuple[tuple[str, str], ...]:
    """(stream, group) of every group ``service`` owns."""
    return tuple((s.name, g.name) for s in REGISTRY.values() for g in s.groups if g.service == service)


def produced_by(service: str) -> tuple[str, ...]:
    """The streams ``service`` writes."""
    return tuple(s.name for s in REGISTRY.values() if s.producer == service)
