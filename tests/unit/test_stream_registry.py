"""The stream registry is complete and consistent: every message type has a home, groups are unique."""

from __future__ import annotations

import pytest

from scalper_shared.schema import streams
from scalper_shared.schema.messages import ALL_MESSAGE_TYPES
from scalper_shared.schema.streams import REGISTRY, StreamError


def test_every_message_type_travels_on_exactly_one_stream_or_is_declared_off_stream() -> None:
    homes = {message: [s.name for s in REGISTRY.values() if message in s.messages] for message in ALL_MESSAGE_TYPES}
    for message, on in homes.items():
        assert len(on) + (message in streams.OFF_STREAM) == 1, f"{message.__name__}: on {on}"


def test_each_stream_has_a_producer_and_each_group_one_owner() -> None:
    for spec in REGISTRY.values():
        assert spec.producer and spec.messages and spec.about
        names = [group.name for group in spec.groups]
        assert len(set(names)) == len(names), spec.name
        owners = [group.service for group in spec.groups]
        assert len(set(owners)) == len(owners), f"{spec.name}: a service owns two groups"


def test_dead_letter_streams_exist_where_a_group_reads_and_are_never_registered() -> None:
    assert REGISTRY[streams.MD_BARS].dead_letter == "md.bars.dlq"
    assert REGISTRY[streams.ORDERS_EVENTS].dead_letter is None  # no group, so no runner to dead-letter
    assert not any(name.endswith(streams.DEAD_LETTER_SUFFIX) for name in REGISTRY)


def test_groups_are_looked_up_by_their_owning_service() -> None:
    assert streams.group_of("execution", streams.MD_BARS) == "execution"
    assert streams.consumed_by("policy") == ((streams.FEATURES_VECTORS, "policy"), (streams.POSITIONS_STATE, "policy"))
    assert streams.produced_by("execution") == (streams.ORDERS_EVENTS, streams.POSITIONS_STATE)
    with pytest.raises(StreamError, match="service 'features' has no consumer group on stream policy.decisions"):
        streams.group_of("features", streams.POLICY_DECISIONS)


def test_the_paper_replay_waits_on_every_registered_group() -> None:
    from scalper_trainer.evaluation.paper import CHAIN

    registered = {(s.name, g.name) for s in REGISTRY.values() for g in s.groups}
    assert set(CHAIN) == registered
