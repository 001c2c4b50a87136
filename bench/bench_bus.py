"""Bus throughput on the real Redis: pipelined publishing, and one ConsumerRunner (decode + ack).

Uses ``BENCH_REDIS_URL`` (default db 15 of the local server) under a unique key prefix it deletes.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import redis

from scalper_shared.bus import ConsumerConfig, ConsumerRunner, Delivery, StreamProducer
from scalper_shared.clock import SequentialIds, SystemClock
from scalper_shared.schema import Bar, Envelope, Session, make_envelope, streams

MESSAGES = 20_000


def _bars(n: int) -> list[Envelope]:
    clock, ids = SystemClock(), SequentialIds("bar")
    start = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    return [make_envelope(Bar(symbol="SPY", start=start, open=500, high=501, low=499, close=500.5, volume=1e3,
                              session=Session.REGULAR, source="bench"), source="bench", clock=clock, ids=ids)
            for _ in range(n)]


def main() -> None:
    client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    try:
        envelopes = _bars(MESSAGES)
        producer = StreamProducer(client, streams.MD_BARS, maxlen=10 * MESSAGES, prefix=prefix)
        started = time.perf_counter()
        producer.publish_many(envelopes)
        publish_s = time.perf_counter() - started
        print(f"publish_many: {MESSAGES} envelopes in {publish_s:.2f}s = {MESSAGES / publish_s:,.0f} msg/s")

        done = threading.Event()
        handled = [0]

        def handler(batch: Sequence[Delivery]) -> None:
            handled[0] += len(batch)
            if handled[0] >= MESSAGES:
                done.set()

        group = streams.group_of("features", streams.MD_BARS)
        for batch_size in (10, 100, 500):
            client.xgroup_destroy(prefix + streams.MD_BARS, group)  # each batch size reads from the start
            runner = ConsumerRunner(client, streams.MD_BARS, group, "c1", handler,
                                    config=ConsumerConfig(batch_size=batch_size, block_ms=100), prefix=prefix)
            handled[0] = 0
            done.clear()
            stop = threading.Event()
            thread = threading.Thread(target=runner.run, args=(stop,))
            started = time.perf_counter()
            thread.start()
            done.wait(300)
            consume_s = time.perf_counter() - started
            stop.set()
            thread.join()
            print(f"consume (batch {batch_size}): {handled[0]} entries read, decoded, acked in {consume_s:.2f}s "
                  f"= {handled[0] / consume_s:,.0f} msg/s")
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
