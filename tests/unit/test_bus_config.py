from __future__ import annotations

import pytest
from pydantic import ValidationError

from scalper_shared.bus import ConsumerConfig
from scalper_shared.bus.consumer import _stream_entries
from scalper_shared.settings import ServiceSettings


def test_consumer_config_mirrors_the_service_settings() -> None:
    settings = ServiceSettings(consumer_batch_size=7, consumer_block_ms=20, consumer_claim_idle_ms=900,
                               consumer_max_deliveries=4)
    config = ConsumerConfig.from_settings(settings, metrics_interval_s=1.0)
    assert (config.batch_size, config.block_ms, config.claim_idle_ms, config.max_deliveries) == (7, 20, 900, 4)
    assert config.metrics_interval_s == 1.0


def test_claim_interval_defaults_to_the_idle_time_capped_at_five_seconds() -> None:
    assert ConsumerConfig(claim_idle_ms=800).claim_interval_s == 0.8
    assert ConsumerConfig(claim_idle_ms=60_000).claim_interval_s == 5.0
    assert ConsumerConfig(claim_idle_ms=60_000, claim_interval_ms=250).claim_interval_s == 0.25


def test_consumer_config_rejects_a_zero_batch() -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        ConsumerConfig(batch_size=0)


@pytest.mark.parametrize("reply", [
    [[b"s", [(b"1-0", {b"envelope": b"a"}), (b"2-0", {b"envelope": b"b"})]]],  # RESP2
    {b"s": [[(b"1-0", {b"envelope": b"a"}), (b"2-0", {b"envelope": b"b"})]]},  # RESP3 (legacy shape)
    {b"s": [(b"1-0", {b"envelope": b"a"}), (b"2-0", {b"envelope": b"b"})]},  # unified shape
])
def test_xreadgroup_replies_of_every_protocol_shape_yield_the_entries(reply: object) -> None:
    assert [entry_id for entry_id, _ in _stream_entries(reply)] == [b"1-0", b"2-0"]


def test_an_empty_xreadgroup_reply_yields_nothing() -> None:
    assert _stream_entries([]) == [] and _stream_entries({}) == [] and _stream_entries(None) == []
