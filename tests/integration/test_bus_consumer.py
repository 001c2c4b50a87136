"""The consumer runner against the real Redis: ack after commit, poison, dead letters, NOGROUP, stop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

import pytest
import redis
from prometheus_client import REGISTRY

from scalper_shared.bus import (
    ENVELOPE_FIELD,
    ConsumerConfig,
    ConsumerRunner,
    Delivery,
    StreamProducer,
    group_backlog,
    read_dead_letters,
)
from scalper_shared.bus.consumer import CRASH_DELIVERIES_FACTOR
from scalper_shared.bus.deadletter import UNKNOWN_ERROR, error_key, move_to_dead_letter, record_error
from scalper_shared.clock import FakeClock
from scalper_shared.schema import CODEC, Bar, Session, make_envelope, streams
from scalper_shared.schema.streams import StreamError
from tests.bus_messages import GROUP, STREAM, decision_envelope
from tests.waiting import wait_until

pytestmark = pytest.mark.integration



def envelope(n: int):  # noqa: ANN201 - an Envelope
    return decision_envelope(f"msg-{n}")


def fast_config(**overrides: object) -> ConsumerConfig:
    values: dict[str, object] = {"batch_size": 10, "block_ms": 20, "claim_idle_ms": 60, "claim_interval_ms": 30,
                                 "max_deliveries": 3, "metrics_interval_s": 0.05}
    return ConsumerConfig.model_validate({**values, **overrides})


class Recorder:
    """A handler that records what it committed and raises for the envelope ids in ``poison``."""

    def __init__(self, poison: Sequence[str] = ()) -> None:
        self.poison = set(poison)
        self.committed: list[str] = []
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, batch: Sequence[Delivery]) -> None:
        ids = [d.envelope.id for d in batch]
        with self.lock:
            self.calls.append(ids)
            if self.poison.intersection(ids):
                raise RuntimeError(f"cannot handle {sorted(self.poison.intersection(ids))}")
            self.committed.extend(ids)


def runner(client: redis.Redis, prefix: str, handler: Callable[[Sequence[Delivery]], None],
           name: str = "c1", **config: object) -> ConsumerRunner:
    return ConsumerRunner(client, STREAM, GROUP, name, handler, config=fast_config(**config), prefix=prefix)


def producer(client: redis.Redis, prefix: str, maxlen: int = 10_000) -> StreamProducer:
    return StreamProducer(client, STREAM, maxlen=maxlen, prefix=prefix)


@contextmanager
def running(consumer: ConsumerRunner) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "runner did not stop"


def pending_count(client: redis.Redis, key: str) -> int:
    return int(client.xpending(key, GROUP)["pending"])


def wait_idle_past_claim(client: redis.Redis, key: str) -> None:
    """Until every pending entry of the group has been idle longer than ``fast_config``'s claim timeout."""
    idle_ms = fast_config().claim_idle_ms
    wait_until(lambda: all(e["time_since_delivered"] > idle_ms
                           for e in client.xpending_range(key, GROUP, "-", "+", 100)),
               5, "pending entries idle past the claim timeout", poll_s=0.01)


def metric(name: str, key: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"stream": key, "group": GROUP, **labels}) or 0.0


def test_entries_are_acknowledged_only_after_the_handler_returned(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish_many([envelope(1), envelope(2)])
    failing = runner(redis_client, stream_prefix, Recorder(poison=["msg-1", "msg-2"]))
    failing.poll()
    assert pending_count(redis_client, failing.key) == 2
    assert read_dead_letters(redis_client, STREAM, prefix=stream_prefix) == []

    wait_idle_past_claim(redis_client, failing.key)  # a healthy consumer now reclaims and commits them
    healthy = Recorder()
    recovered = runner(redis_client, stream_prefix, healthy, name="c2")
    recovered.poll()
    assert sorted(healthy.committed) == ["msg-1", "msg-2"]
    assert pending_count(redis_client, failing.key) == 0
    assert metric("scalper_bus_reclaimed_total", failing.key) == 2


def test_reclaimed_entries_carry_their_delivery_count(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish(envelope(1))
    crashed = runner(redis_client, stream_prefix, Recorder(), name="crashed")
    crashed.ensure_group()
    redis_client.xreadgroup(GROUP, "crashed", {crashed.key: ">"}, count=10)  # read, then "crash"
    seen: list[Delivery] = []
    survivor = runner(redis_client, stream_prefix, seen.extend, name="survivor")
    wait_idle_past_claim(redis_client, crashed.key)
    survivor.poll()
    assert [(d.envelope.id, d.deliveries) for d in seen] == [("msg-1", 2)]
    assert pending_count(redis_client, crashed.key) == 0


def test_pending_entries_lost_to_trimming_are_counted_and_cleared(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish_many([envelope(n) for n in range(5)])
    crashed = runner(redis_client, stream_prefix, Recorder(), name="crashed")
    crashed.ensure_group()
    redis_client.xreadgroup(GROUP, "crashed", {crashed.key: ">"}, count=3)
    redis_client.xtrim(crashed.key, maxlen=0, approximate=False)  # a producer's MAXLEN outran the group
    wait_idle_past_claim(redis_client, crashed.key)
    handler = Recorder()
    runner(redis_client, stream_prefix, handler, name="survivor").poll()
    assert handler.committed == []
    assert metric("scalper_bus_trimmed_unprocessed_total", crashed.key) == 3
    assert pending_count(redis_client, crashed.key) == 0


def test_a_poison_message_is_isolated_and_dead_lettered_after_max_deliveries(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish_many([envelope(n) for n in range(1, 8)])
    handler = Recorder(poison=["msg-4"])
    consumer = runner(redis_client, stream_prefix, handler, max_deliveries=3)
    with running(consumer):
        wait_until(lambda: len(read_dead_letters(redis_client, STREAM, prefix=stream_prefix)) == 1)
    assert sorted(handler.committed) == sorted(f"msg-{n}" for n in (1, 2, 3, 5, 6, 7))
    [dead] = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert (dead.stream, dead.group, dead.deliveries) == (consumer.key, GROUP, 3)
    assert "RuntimeError: cannot handle ['msg-4']" in dead.error
    assert dead.original_id == redis_client.xrange(consumer.key)[3][0].decode()
    assert b'"id":"msg-4"' in dead.envelope
    assert sum(ids == ["msg-4"] for ids in handler.calls) == 3  # retried alone, 3 deliveries
    assert pending_count(redis_client, consumer.key) == 0
    assert metric("scalper_bus_dead_lettered_total", consumer.key, reason="max_deliveries") == 1


def crash_holders(client: redis.Redis, key: str, times: int) -> str:
    """Deliver the stream's one entry ``times`` times to consumers that die holding it; its id."""
    [(entry_id, _)] = client.xreadgroup(GROUP, "crashed-0", {key: ">"}, count=1)[0][1]
    for n in range(1, times):
        client.xclaim(key, GROUP, f"crashed-{n}", 0, [entry_id])  # each XCLAIM counts a delivery
    return entry_id.decode()


@pytest.mark.parametrize(("failed_before", "dead_lettered"), [(False, False), (True, True)])
def test_crashes_alone_do_not_dead_letter_an_entry_at_max_deliveries(
        redis_client, stream_prefix, failed_before: bool, dead_lettered: bool) -> None:
    producer(redis_client, stream_prefix).publish(envelope(1))
    handler = Recorder()
    survivor = runner(redis_client, stream_prefix, handler, name="survivor")  # max_deliveries 3
    survivor.ensure_group()
    entry_id = crash_holders(redis_client, survivor.key, 4)  # the survivor's reclaim makes it 5
    if failed_before:
        record_error(redis_client, survivor.key, GROUP, entry_id, "RuntimeError: failed once")
    wait_idle_past_claim(redis_client, survivor.key)
    survivor.poll()
    dead = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert (handler.committed, len(dead)) == (([], 1) if dead_lettered else (["msg-1"], 0))
    assert pending_count(redis_client, survivor.key) == 0


def test_an_entry_that_outlives_the_crash_allowance_is_dead_lettered(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish(envelope(1))
    handler = Recorder()
    survivor = runner(redis_client, stream_prefix, handler, name="survivor")
    survivor.ensure_group()
    crash_holders(redis_client, survivor.key, 3 * CRASH_DELIVERIES_FACTOR)  # reclaimed: one past the allowance
    wait_idle_past_claim(redis_client, survivor.key)
    survivor.poll()
    [dead] = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert handler.committed == [] and dead.deliveries == 3 * CRASH_DELIVERIES_FACTOR + 1
    assert dead.error == UNKNOWN_ERROR


def test_only_the_owner_dead_letters_an_entry_and_the_last_error_travels_with_it(
        redis_client, stream_prefix) -> None:
    key = stream_prefix + STREAM
    dead_key = stream_prefix + streams.dead_letter(STREAM)
    entry_id = producer(redis_client, stream_prefix).publish(envelope(1))
    redis_client.xgroup_create(key, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "a", {key: ">"}, count=1)
    record_error(redis_client, key, GROUP, entry_id, "ValueError: seen by a")
    redis_client.xclaim(key, GROUP, "b", 0, [entry_id])  # b reclaimed it while a was still busy
    move = partial(move_to_dead_letter, redis_client, key, dead_key, group=GROUP, entry_id=entry_id,
                   data=b"{}", error=None, maxlen=100)
    assert move(consumer="a") is False
    assert move(consumer="b") is True
    assert move(consumer="b") is False  # acknowledged: never twice
    [dead] = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert (dead.consumer, dead.deliveries, dead.error) == ("b", 2, "ValueError: seen by a")
    assert redis_client.exists(error_key(key, GROUP, entry_id)) == 0


def test_undecodable_entries_are_dead_lettered_at_once(redis_client, stream_prefix) -> None:
    key = stream_prefix + STREAM
    producer(redis_client, stream_prefix).publish(envelope(1))
    redis_client.xadd(key, {"envelope": b"{not json"})
    redis_client.xadd(key, {"something": b"else"})
    handler = Recorder()
    consumer = runner(redis_client, stream_prefix, handler)
    consumer.poll()
    assert handler.committed == ["msg-1"]
    dead = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert [d.deliveries for d in dead] == [1, 1]
    assert "not JSON" in dead[0].error and dead[0].envelope == b"{not json"
    assert "no 'envelope' field" in dead[1].error
    assert pending_count(redis_client, key) == 0
    assert metric("scalper_bus_dead_lettered_total", key, reason="undecodable") == 2


def test_the_consumer_recreates_its_group_when_it_is_deleted(redis_client, stream_prefix) -> None:
    publisher = producer(redis_client, stream_prefix)
    handler = Recorder()
    consumer = runner(redis_client, stream_prefix, handler)
    with running(consumer):
        publisher.publish(envelope(1))
        wait_until(lambda: "msg-1" in handler.committed)
        redis_client.xgroup_destroy(consumer.key, GROUP)
        publisher.publish(envelope(2))
        wait_until(lambda: "msg-2" in handler.committed)
    assert group_backlog(redis_client, consumer.key, GROUP) is not None
    assert pending_count(redis_client, consumer.key) == 0


def test_stop_finishes_and_acknowledges_the_batch_in_hand(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish_many([envelope(n) for n in range(1, 26)])
    in_handler, release = threading.Event(), threading.Event()
    committed: list[str] = []

    def slow_handler(batch: Sequence[Delivery]) -> None:
        in_handler.set()
        release.wait(5)
        committed.extend(d.envelope.id for d in batch)

    consumer = runner(redis_client, stream_prefix, slow_handler, batch_size=10, claim_idle_ms=60_000)
    with running(consumer) as stop:
        assert in_handler.wait(5)
        stop.set()
        release.set()
    assert len(committed) == 10
    assert pending_count(redis_client, consumer.key) == 0
    backlog = group_backlog(redis_client, consumer.key, GROUP)
    assert backlog is not None and backlog.lag == 15


def test_lag_and_pending_are_exported(redis_client, stream_prefix) -> None:
    producer(redis_client, stream_prefix).publish_many([envelope(n) for n in range(10)])
    consumer = runner(redis_client, stream_prefix, Recorder(poison=[f"msg-{n}" for n in range(10)]),
                      batch_size=4, claim_idle_ms=60_000)
    consumer.poll()
    consumer.refresh_metrics()
    assert metric("scalper_bus_group_lag", consumer.key) == 6
    assert metric("scalper_bus_group_pending", consumer.key) == 4
    assert metric("scalper_bus_handler_failures_total", consumer.key) == 5  # the batch, then each entry


def test_the_runner_serves_as_a_background_worker(redis_client, stream_prefix) -> None:
    handler = Recorder()
    worker = runner(redis_client, stream_prefix, handler).as_worker()
    worker.start()
    try:
        producer(redis_client, stream_prefix).publish(envelope(1))
        wait_until(lambda: handler.committed == ["msg-1"])
    finally:
        worker.stop()
        worker.join(5)
    assert not worker.is_alive()


def test_an_entry_of_a_type_not_registered_on_the_stream_is_dead_lettered(redis_client, stream_prefix) -> None:
    key = stream_prefix + STREAM
    bar = Bar(symbol="SPY", start=datetime(2024, 3, 1, 14, 30, tzinfo=UTC), open=1, high=1, low=1, close=1,
              session=Session.REGULAR, source="test")
    redis_client.xadd(key, {ENVELOPE_FIELD: CODEC.encode(make_envelope(bar, source="x", clock=FakeClock(
        datetime(2024, 3, 1, tzinfo=UTC)), ids=lambda: "bar-1"))})  # a raw XADD past the producer's guard
    producer(redis_client, stream_prefix).publish(envelope(1))
    handler = Recorder()
    runner(redis_client, stream_prefix, handler).poll()
    assert handler.committed == ["msg-1"]
    [dead] = read_dead_letters(redis_client, STREAM, prefix=stream_prefix)
    assert dead.error == "message type 'bar' is not registered on this stream"
    assert metric("scalper_bus_dead_lettered_total", key, reason="unregistered_type") == 1
    assert pending_count(redis_client, key) == 0


def test_a_group_not_registered_on_the_stream_is_refused(redis_client) -> None:
    with pytest.raises(StreamError, match="group 'policy' is not registered on stream policy.decisions .its groups: "
                                          "execution"):
        ConsumerRunner(redis_client, STREAM, "policy", "c1", Recorder(), config=fast_config())
    with pytest.raises(StreamError, match="its groups: none"):
        ConsumerRunner(redis_client, streams.ORDERS_EVENTS, "audit", "c1", Recorder(), config=fast_config())
