"""The stream producer against the real Redis: JSON entries, pipelining, trimming and its guards."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from scalper_shared.bus import ENVELOPE_FIELD, StreamProducer
from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import Action
from scalper_shared.schema import CODEC, Bar, PolicyDecision, Session, make_envelope, streams
from scalper_shared.schema.streams import StreamError

pytestmark = pytest.mark.integration

CLOCK = FakeClock(datetime(2024, 3, 1, 14, 30, tzinfo=UTC))


def bar_envelope(n: int):  # noqa: ANN201 - an Envelope
    bar = Bar(symbol="SPY", start=datetime(2024, 3, 1, 14, 30, tzinfo=UTC), open=500 + n, high=501 + n,
              low=499 + n, close=500.5 + n, volume=1000, session=Session.REGULAR, source="test")
    return make_envelope(bar, source="ingestion", clock=CLOCK, ids=lambda: f"bar-{n}")


def test_an_entry_holds_the_json_envelope_in_one_field(redis_client, stream_prefix) -> None:
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix)
    entry_id = producer.publish(bar_envelope(1))
    [(read_id, fields)] = redis_client.xrange(stream_prefix + streams.MD_BARS)
    assert read_id.decode() == entry_id
    assert list(fields) == [ENVELOPE_FIELD.encode()]
    assert CODEC.decode(fields[ENVELOPE_FIELD.encode()]) == bar_envelope(1)


def test_publish_many_keeps_the_order_and_returns_every_id(redis_client, stream_prefix) -> None:
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=10_000, prefix=stream_prefix)
    ids = producer.publish_many([bar_envelope(n) for n in range(2500)])
    rows = redis_client.xrange(producer.key)
    assert [row_id.decode() for row_id, _ in rows] == ids
    assert [CODEC.decode(f[b"envelope"]).id for _, f in rows] == [f"bar-{n}" for n in range(2500)]


def test_the_stream_is_trimmed_to_about_maxlen(redis_client, stream_prefix) -> None:
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=200, prefix=stream_prefix)
    producer.publish_many([bar_envelope(n) for n in range(3000)])
    assert 200 <= redis_client.xlen(producer.key) < 400


def test_a_group_backlog_near_maxlen_is_reported_before_trimming(redis_client, stream_prefix, caplog) -> None:
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=100, prefix=stream_prefix,
                              trim_check_interval_s=0.0, trim_warn_ratio=0.8)
    redis_client.xgroup_create(producer.key, "features", id="0", mkstream=True)
    producer.publish_many([bar_envelope(n) for n in range(70)])
    assert producer.check_trim_risk() == []
    labels = {"stream": producer.key, "group": "features"}
    assert REGISTRY.get_sample_value("scalper_bus_trim_risk_ratio", labels) == pytest.approx(0.7)

    redis_client.xreadgroup("features", "c1", {producer.key: ">"}, count=5)  # 5 pending, 65 undelivered
    with caplog.at_level(logging.WARNING, logger="scalper_shared.bus.producer"):
        producer.publish_many([bar_envelope(n) for n in range(70, 85)])
    assert "group features has 70 unprocessed entries (lag 65, pending 5) and 15 more" in caplog.text
    assert REGISTRY.get_sample_value("scalper_bus_trim_risk_warnings_total", labels) == 1
    assert producer.check_trim_risk()[0].unprocessed == 85
    assert REGISTRY.get_sample_value("scalper_bus_trim_risk_ratio", labels) == pytest.approx(0.85)


def decision_envelope():  # noqa: ANN201 - an Envelope
    decision = PolicyDecision(symbol="SPY", minute=CLOCK.now(), action=Action.HOLD,
                              probabilities=(1.0, 0.0, 0.0, 0.0, 0.0, 0.0), mask=(True,) * 3 + (False,) * 3,
                              model_id="m", spec_hash="h")
    return make_envelope(decision, source="policy", clock=CLOCK, ids=lambda: "decision-1")


def test_a_type_not_registered_on_the_stream_is_refused_and_nothing_is_appended(redis_client, stream_prefix) -> None:
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix)
    wrong = decision_envelope()
    with pytest.raises(StreamError, match="'policy_decision' is not registered on stream md.bars .it carries: bar"):
        producer.publish(wrong)
    with pytest.raises(StreamError, match="policy_decision"):
        producer.publish_many([bar_envelope(1), wrong])
    with pytest.raises(StreamError, match="policy_decision"):
        producer.publish_once(wrong, stream_prefix + "claim", 60)
    with pytest.raises(StreamError, match="policy_decision"):
        producer.publish_encoded([CODEC.encode(bar_envelope(2)), CODEC.encode(wrong)])
    assert redis_client.xlen(producer.key) == 0
    assert redis_client.exists(stream_prefix + "claim") == 0
    assert producer.publish_encoded([CODEC.encode(bar_envelope(3))]) != []


def test_unknown_and_dead_letter_streams_are_refused(redis_client) -> None:
    with pytest.raises(StreamError, match="unknown stream 'risk.commands'"):
        StreamProducer(redis_client, "risk.commands", maxlen=10)
    with pytest.raises(StreamError, match="md.bars.dlq is a dead-letter stream"):
        StreamProducer(redis_client, streams.dead_letter(streams.MD_BARS), maxlen=10)
