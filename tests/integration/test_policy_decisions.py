"""Live decisions over real Redis streams: one PolicyDecision per symbol-minute, none twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from scalper_policy.decisions import LiveDecisions, decision_id
from scalper_policy.inference import ModelHolder
from scalper_policy.live import LiveState, minute_ms
from scalper_shared.bus import ConsumerConfig, ConsumerRunner, StreamProducer
from scalper_shared.clock import FakeClock, SequentialIds
from scalper_shared.core.actions import Action
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.schema import CODEC, streams
from scalper_shared.schema.envelope import make_envelope
from scalper_shared.schema.messages import FeatureVector, PolicyDecision, PositionSide, PositionState
from tests.unit.policy_support import served

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 5, 15, 10, tzinfo=UTC)  # 10:10 ET: after the features warm-up (no decisions before)
CONFIG = ConsumerConfig(batch_size=50, block_ms=10, claim_idle_ms=60_000)


def _publish(client: redis.Redis, prefix: str, stream: str, messages: list, clock: FakeClock) -> None:
    producer = StreamProducer(client, stream, maxlen=10_000, prefix=prefix)
    ids = SequentialIds(stream)
    producer.publish_many([make_envelope(m, source="test", clock=clock, ids=ids) for m in messages])


def _decisions(client: redis.Redis, prefix: str) -> list[tuple[str, PolicyDecision]]:
    entries = client.xrange(prefix + streams.POLICY_DECISIONS)
    envelopes = [CODEC.decode(fields[b"envelope"]) for _, fields in entries]
    return [(e.id, e.payload) for e in envelopes]


def _vectors(symbol: str, minutes: int) -> list[FeatureVector]:
    return [FeatureVector(symbol=symbol, minute=START + timedelta(minutes=i), spec_hash=FEATURE_SPEC.spec_hash,
                          values=tuple(0.05 * ((i + j) % 7 - 3) for j in range(FEATURE_SPEC.n_market)))
            for i in range(minutes)]


def test_each_symbol_minute_gets_one_decision_even_when_redelivered(
        redis_client: redis.Redis, stream_prefix: str, tmp_path: Path) -> None:
    clock = FakeClock(START + timedelta(minutes=5))
    holder, live = ModelHolder(served(tmp_path, "model-live", seed=5)), LiveState()
    producer = StreamProducer(redis_client, streams.POLICY_DECISIONS, maxlen=10_000, prefix=stream_prefix)
    decisions = LiveDecisions(holder, live, producer, clock, prefix=stream_prefix, max_age_s=600)
    positions = ConsumerRunner(redis_client, streams.POSITIONS_STATE, "policy", "c1", decisions.handle_positions,
                               config=CONFIG, prefix=stream_prefix)
    features = ConsumerRunner(redis_client, streams.FEATURES_VECTORS, "policy", "c1", decisions.handle_features,
                              config=CONFIG, prefix=stream_prefix)
    _publish(redis_client, stream_prefix, streams.POSITIONS_STATE,
             [PositionState(symbol="QQQ", side=PositionSide.PUT, contracts=1,
                                            as_of=START + timedelta(minutes=5))], clock)  # marked on every bar
    _publish(redis_client, stream_prefix, streams.FEATURES_VECTORS, _vectors("SPY", 5) + _vectors("QQQ", 5), clock)
    positions.poll()
    features.poll()

    published = _decisions(redis_client, stream_prefix)
    assert len(published) == 10
    spy = [d for _, d in published if d.symbol == "SPY"]
    assert [d.minute for d in spy] == [START + timedelta(minutes=i) for i in range(5)]
    assert all(d.model_id == "model-live" and d.spec_hash == FEATURE_SPEC.spec_hash for _, d in published)
    assert all(d.mask[Action.BUY_CALL] is False for _, d in published if d.symbol == "QQQ")
    last_spy = spy[-1]
    snapshot = live.snapshot("SPY")
    assert snapshot is not None
    assert int(last_spy.action) == holder.current().policy.act(snapshot.observation, snapshot.inputs.mask())[0]
    assert (published[0][0] == decision_id("model-live", published[0][1].symbol, minute_ms(published[0][1].minute)))

    # the same vectors again (a redelivery after a crash before the ack): nothing new is published
    _publish(redis_client, stream_prefix, streams.FEATURES_VECTORS, _vectors("SPY", 5), clock)
    features.poll()
    assert decisions.publish_decision("SPY", minute_ms(START + timedelta(minutes=4))) is None
    assert len(_decisions(redis_client, stream_prefix)) == 10


def test_stale_vectors_fill_the_window_without_decisions(
        redis_client: redis.Redis, stream_prefix: str, tmp_path: Path) -> None:
    clock = FakeClock(START + timedelta(hours=3))
    holder, live = ModelHolder(served(tmp_path, "model-live")), LiveState()
    producer = StreamProducer(redis_client, streams.POLICY_DECISIONS, maxlen=10_000, prefix=stream_prefix)
    decisions = LiveDecisions(holder, live, producer, clock, prefix=stream_prefix, max_age_s=120)
    features = ConsumerRunner(redis_client, streams.FEATURES_VECTORS, "policy", "c1", decisions.handle_features,
                              config=CONFIG, prefix=stream_prefix)
    _publish(redis_client, stream_prefix, streams.FEATURES_VECTORS, _vectors("SPY", 20), clock)
    features.poll()
    assert _decisions(redis_client, stream_prefix) == []
    snapshot = live.snapshot("SPY")
    assert snapshot is not None and len(live._symbols["SPY"].window) == 20


def test_vectors_marked_unavailable_get_no_decision_until_superseded(
        redis_client: redis.Redis, stream_prefix: str, tmp_path: Path) -> None:
    """Live never decides on an observation training never saw: a row computed without its peer
    (or without volume) keeps its symbol's window from deciding; the superseding row clears it."""
    from scalper_policy.decisions import SKIPPED

    clock = FakeClock(START + timedelta(minutes=5))
    holder, live = ModelHolder(served(tmp_path, "model-live", seed=5)), LiveState()
    producer = StreamProducer(redis_client, streams.POLICY_DECISIONS, maxlen=10_000, prefix=stream_prefix)
    decisions = LiveDecisions(holder, live, producer, clock, prefix=stream_prefix, max_age_s=600)
    features = ConsumerRunner(redis_client, streams.FEATURES_VECTORS, "policy", "c1", decisions.handle_features,
                              config=CONFIG, prefix=stream_prefix)
    refused_before = SKIPPED.labels("unavailable_features")._value.get()
    spy = _vectors("SPY", 4)
    marked = [v.model_copy(update={"unavailable": ("peer_ret_5",)}) for v in spy[:3]]
    no_volume = [v.model_copy(update={"unavailable": ("dist_vwap", "volume_z")}) for v in _vectors("QQQ", 2)]
    _publish(redis_client, stream_prefix, streams.FEATURES_VECTORS, marked + no_volume, clock)
    features.poll()
    assert _decisions(redis_client, stream_prefix) == []
    assert SKIPPED.labels("unavailable_features")._value.get() - refused_before == 5

    _publish(redis_client, stream_prefix, streams.FEATURES_VECTORS, spy[:3], clock)  # full context now
    features.poll()
    published = _decisions(redis_client, stream_prefix)
    assert [(d.symbol, d.minute) for _, d in published] == [("SPY", spy[2].minute)]  # the newest minute
