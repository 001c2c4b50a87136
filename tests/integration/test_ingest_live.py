"""Live mode against a fake Polygon websocket cluster: bars stored, corrections replace, md.bars published."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import redis
from sqlalchemy import Engine, text

from scalper_ingestion.live import run_live
from scalper_ingestion.sources.polygon_ws import PolygonWebSocketSource, ReconnectPolicy
from scalper_ingestion.writer import BarWriter
from scalper_shared.bus import StreamProducer
from scalper_shared.db import make_engine
from scalper_shared.schema import CODEC, streams
from tests.fakes.polygon_ws import FakePolygonWebSocket, am_event

pytestmark = pytest.mark.integration

OPEN_MS = 1751376600000  # 2025-07-01 09:30 ET


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def test_live_feed_stores_and_publishes_bars_and_replaces_a_corrected_minute_until_stopped(
        migrated_database_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    engine = make_engine(migrated_database_url)
    producer = StreamProducer(redis_client, streams.MD_BARS, maxlen=1000, prefix=stream_prefix)
    writer = BarWriter(engine, producer)
    stop = threading.Event()

    async def scenario() -> None:
        async with FakePolygonWebSocket() as fake:
            source = PolygonWebSocketSource("test-key", ["SPY", "I:SPX"], stocks_url=f"{fake.url}/stocks",
                                            indices_url=f"{fake.url}/indices",
                                            reconnect=ReconnectPolicy(initial_s=0.05, max_s=0.1))
            live = asyncio.create_task(run_live(source, writer, stop))
            await fake.wait_for_subscribes(2)
            await fake.send_aggregates([am_event("SPY", OPEN_MS, 620.0, 621.0, 619.0, 620.5),
                                        am_event("I:SPX", OPEN_MS, 6200.0, 6210.0, 6190.0, 6205.0)])
            await _until(lambda: redis_client.xlen(producer.key) == 2)
            await fake.send_aggregates([am_event("SPY", OPEN_MS, 620.0, 621.5, 619.0, 621.2),  # late trades
                                        am_event("SPY", OPEN_MS + 60_000, 621.2, 622.0, 621.0, 621.8)])
            await _until(lambda: redis_client.xlen(producer.key) == 4)
            await fake.send_aggregates([am_event("SPY", OPEN_MS + 60_000, 621.2, 622.0, 621.0, 621.8)])
            await asyncio.sleep(0.5)  # the identical minute again: stored already, nothing to publish
            stop.set()
            await asyncio.wait_for(live, timeout=5)

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=30))
        assert _count(engine, "SELECT count(*) FROM bars") == 3
        assert _count(engine, "SELECT count(*) FROM bars WHERE symbol = 'I:SPX' AND volume IS NULL") == 1
        assert _count(engine, "SELECT count(*) FROM bars WHERE symbol = 'SPY' AND close = 621.2") == 1
    finally:
        engine.dispose()
    envelopes = [CODEC.decode(fields[b"envelope"]) for _, fields in redis_client.xrange(producer.key)]
    assert len(envelopes) == 4
    assert [e.payload.close for e in envelopes if e.payload.symbol == "SPY"] == [620.5, 621.2, 621.8]
    assert envelopes[0].payload.source == "polygon_ws"
