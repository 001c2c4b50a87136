"""Live decisions: ``features.vectors`` -> one ``PolicyDecision`` per symbol-minute on ``policy.decisions``.

Two consumers of the service's group: ``positions.state`` keeps each symbol's position (mask
inputs), ``features.vectors`` feeds the observation windows and triggers a decision of the served
model. Publication is once per (model, symbol, minute): the envelope id is deterministic and a Redis
``SET NX`` claim key is taken in the same atomic step as the ``XADD``, so a redelivered vector
publishes nothing twice. Vectors older than ``max_age_s`` (a backlog after downtime) update the
window but get no decision; vectors of another feature spec are ignored (and counted). No decision
is taken while the symbol's 20-row window holds a row marked ``unavailable`` (computed without its
peers' bars or without volume): training never saw such an observation. Such refusals are counted
(``scalper_policy_vectors_skipped_total{reason="unavailable_features"}``) and logged; a superseding
vector (the same minute with its full context) replaces the row, and a decision on the newest minute
is taken then if it is still due.

Decisions follow the training environment's timing so that paper trading equals the backtest: none
before the features' warm-up row of the session (the env's first decision), and a symbol holding a
position is decided only once execution's state marked on that minute's bar has arrived (the
decision waits for it, then is taken when ``positions.state`` delivers it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta

import redis
from prometheus_client import Counter
from sqlalchemy import Engine, func, select

from scalper_policy.inference import ModelHolder, decide
from scalper_policy.live import LiveState, minute_datetime, minute_ms
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, Delivery, StreamProducer
from scalper_shared.clock import Clock
from scalper_shared.core.features.sessions import MINUTE_MS, session_of
from scalper_shared.db import bars
from scalper_shared.runtime.app import ThreadWorker
from scalper_shared.schema import streams
from scalper_shared.schema.envelope import Envelope
from scalper_shared.schema.messages import FeatureVector, PolicyDecision, PositionState

logger = logging.getLogger(__name__)

SERVICE = SOURCE = "policy"
CLAIM_KEY_PREFIX = "policy:decided:"

DECISIONS = Counter("scalper_policy_decisions_total", "Decisions published on policy.decisions", ["model_id"])
SKIPPED = Counter("scalper_policy_vectors_skipped_total", "Feature vectors that got no decision", ["reason"])


def decision_id(model_id: str, symbol: str, minute: int) -> str:
    return f"pd:{model_id}:{symbol}:{minute}"


def claim_key(prefix: str, model_id: str, symbol: str, minute: int) -> str:
    return f"{prefix}{CLAIM_KEY_PREFIX}{model_id}:{symbol}:{minute}"


class LiveDecisions:
    """The handlers of the two consumers (pure of Redis reads; they publish through ``producer``)."""

    def __init__(self, holder: ModelHolder, live: LiveState, producer: StreamProducer, clock: Clock, *,
                 prefix: str = "", max_age_s: float = 120.0, claim_ttl_s: int = 172_800,
                 session_start: SessionStart = lambda symbol, minute: None) -> None:
        self.holder = holder
        self.live = live
        self._producer = producer
        self._clock = clock
        self._prefix = prefix
        self._max_age = timedelta(seconds=max_age_s)
        self._claim_ttl_s = claim_ttl_s
        self._session_start = session_start
        self._waiting: dict[str, tuple[int, str]] = {}
        """symbol -> (minute, correlation id) of a decision waiting for the position's mark."""

    def handle_positions(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            state = delivery.envelope.payload
            if isinstance(state, PositionState):
                self.live.update_position(state)
                self._decide_waiting(state.symbol)

    def _decide_waiting(self, symbol: str) -> None:
        waiting = self._waiting.get(symbol)
        if waiting is not None and self.live.position_marked(symbol, waiting[0]):
            del self._waiting[symbol]
            self.publish_decision(symbol, waiting[0], correlation_id=waiting[1])

    def handle_features(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            vector = delivery.envelope.payload
            if isinstance(vector, FeatureVector):
                self._on_vector(vector, delivery.envelope)

    def _on_vector(self, vector: FeatureVector, envelope: Envelope) -> None:
        if vector.spec_hash != self.live.spec.spec_hash:
            SKIPPED.labels("other_spec").inc()
            logger.warning("vector %s/%s has spec %s, this service computes %s: ignored", vector.symbol,
                           vector.minute, vector.spec_hash[:12], self.live.spec.spec_hash[:12])
            return
        self.live.push_features(vector)  # False on a redelivery: the decision below is idempotent
        if self._clock.now() - vector.minute > self._max_age:
            SKIPPED.labels("stale").inc()
            return
        minute = minute_ms(vector.minute)
        if before_warmup(minute, self.live.spec.warmup, self._session_start(vector.symbol, minute)):
            SKIPPED.labels("warmup").inc()
            return
        if not self.live.position_marked(vector.symbol, minute):
            self._waiting[vector.symbol] = (minute, envelope.id)
            self._decide_waiting(vector.symbol)  # the mark may have come in meanwhile
            return
        self._waiting.pop(vector.symbol, None)
        self.publish_decision(vector.symbol, minute, correlation_id=envelope.id)

    def publish_decision(self, symbol: str, minute: int, correlation_id: str | None = None) -> str | None:
        """Decide ``symbol`` at ``minute`` with the served model and publish it once; the entry id, or
        None when there is no model, the window is elsewhere, or it was published before."""
        model = self.holder.current()
        snapshot = self.live.snapshot(symbol)
        if model is None:
            SKIPPED.labels("no_model").inc()
            return None
        if snapshot is None or snapshot.minute != minute:
            SKIPPED.labels("window_moved").inc()
            return None
        if snapshot.unavailable:
            SKIPPED.labels("unavailable_features").inc()
            logger.warning("no decision for %s at %s: its window holds features computed without their inputs "
                           "(%s), an observation training never saw", symbol, minute_datetime(minute),
                           ", ".join(sorted(snapshot.unavailable)))
            return None
        if model.spec_hash != self.live.spec.spec_hash:
            SKIPPED.labels("model_spec").inc()
            return None
        decision = decide(model, snapshot.observation, snapshot.inputs.mask(model.risk))
        message = PolicyDecision(symbol=symbol, minute=minute_datetime(minute), action=decision.action,
                                 probabilities=tuple(float(p) for p in decision.probabilities),
                                 mask=tuple(bool(m) for m in decision.mask), model_id=model.model_id,
                                 spec_hash=model.spec_hash, deterministic=True)
        envelope = Envelope(type=message.TYPE, version=message.VERSION,
                            id=decision_id(model.model_id, symbol, minute), ts_event=message.minute,
                            ts_init=self._clock.now(), source=SOURCE, correlation_id=correlation_id,
                            payload=message)
        entry_id = self._producer.publish_once(
            envelope, claim_key(self._prefix, model.model_id, symbol, minute), self._claim_ttl_s)
        if entry_id is None:
            SKIPPED.labels("already_published").inc()
            return None
        DECISIONS.labels(model.model_id).inc()
        logger.debug("decision %s for %s at %s: %s", envelope.id, symbol, message.minute, decision.action.name)
        return entry_id


SessionStart = Callable[[str, int], int | None]
"""(symbol, minute) -> the minute (epoch ms) of the symbol's first bar in that minute's session, if known."""


class StoredSessionStarts:
    """:data:`SessionStart` from the ``bars`` table (ingestion stores a bar before publishing it, so the
    session's first bar is there before its first vector); found starts are cached per symbol-session."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._found: dict[tuple[str, int], int] = {}

    def __call__(self, symbol: str, minute: int) -> int | None:
        bounds = session_of(minute)
        if bounds is None:
            return None
        key = (symbol, bounds.open_ms)
        if key not in self._found:
            query = select(func.min(bars.c.start)).where(bars.c.symbol == symbol,
                                                         bars.c.start >= minute_datetime(bounds.open_ms),
                                                         bars.c.start < minute_datetime(bounds.close_ms))
            with self._engine.connect() as connection:
                first = connection.execute(query).scalar_one_or_none()
            if first is None:
                return None
            self._found[key] = minute_ms(first)
        return self._found[key]


def before_warmup(minute: int, warmup: int, session_first: int | None = None) -> bool:
    """True for the first ``warmup`` rows of the session's feature grid, which starts at its first bar
    ``session_first`` (the open when unknown): the environment takes no decision there. On a day whose
    first minutes have no bar (2025-08-21 starts at 09:44 ET) the grid, and the warm-up, start later."""
    bounds = session_of(minute)
    if bounds is None:
        return False
    first = session_first if session_first is not None and bounds.open_ms <= session_first <= minute \
        else bounds.open_ms
    return (minute - first) // MINUTE_MS < warmup


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def decision_workers(decisions: LiveDecisions, client: redis.Redis, *, config: ConsumerConfig,
                     prefix: str = "") -> list[ThreadWorker]:
    """The positions and features consumers (the policy's registered groups) as background workers,
    positions first."""
    name = consumer_name()
    positions = ConsumerRunner(client, streams.POSITIONS_STATE, streams.group_of(SERVICE, streams.POSITIONS_STATE),
                               name, decisions.handle_positions, config=config, prefix=prefix)
    features = ConsumerRunner(client, streams.FEATURES_VECTORS, streams.group_of(SERVICE, streams.FEATURES_VECTORS),
                              name, decisions.handle_features, config=config, prefix=prefix)
    return [positions.as_worker(), features.as_worker()]
