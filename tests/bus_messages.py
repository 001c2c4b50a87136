"""Envelopes for the bus tests: a message of the type the stream registry puts on their stream."""

from __future__ import annotations

from datetime import UTC, datetime

from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import Action
from scalper_shared.schema import Envelope, PolicyDecision, make_envelope, streams

STREAM = streams.POLICY_DECISIONS
GROUP = streams.group_of("execution", STREAM)
CLOCK = FakeClock(datetime(2024, 3, 1, 14, 30, tzinfo=UTC))


def decision_envelope(message_id: str) -> Envelope:
    """A ``PolicyDecision`` (the type of ``STREAM``) with envelope id ``message_id``."""
    message = PolicyDecision(symbol="SPY", minute=CLOCK.now(), action=Action.HOLD,
                             probabilities=(1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
                             mask=(True, True, True, False, False, False), model_id="m-test", spec_hash="test")
    return make_envelope(message, source="test", clock=CLOCK, ids=lambda: message_id)
