"""Polygon websocket live source against a fake Polygon cluster on 127.0.0.1 (real websockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import pandas as pd
import pytest

from scalper_ingestion.sources.polygon_rest import PolygonUnavailable
from scalper_ingestion.sources.polygon_ws import (
    PolygonStreamAuthError,
    PolygonWebSocketSource,
    ReconnectPolicy,
)
from tests.fakes.polygon_ws import FakePolygonWebSocket, am_event

pytestmark = pytest.mark.integration

T = TypeVar("T")
FAST = ReconnectPolicy(initial_s=0.01, max_s=0.05, open_timeout_s=2.0)
MINUTE_0 = int(datetime(2025, 7, 1, 13, 31, tzinfo=UTC).timestamp() * 1000)  # 09:31 ET
MINUTE_1 = MINUTE_0 + 60_000


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def _source(fake: FakePolygonWebSocket, symbols: list[str], key: str = "test-key",
            reconnect: ReconnectPolicy = FAST) -> PolygonWebSocketSource:
    return PolygonWebSocketSource(key, symbols, stocks_url=f"{fake.url}/stocks",
                                  indices_url=f"{fake.url}/indices", reconnect=reconnect)


async def _next(batches: AsyncIterator[pd.DataFrame]) -> pd.DataFrame:
    return await asyncio.wait_for(anext(batches), timeout=5)


def test_auth_subscribe_and_minute_aggregates_arrive_as_bars():
    async def scenario() -> None:
        async with FakePolygonWebSocket() as fake:
            batches = _source(fake, ["SPY", "QQQ", "I:SPX"]).batches()
            first = asyncio.ensure_future(anext(batches))
            await fake.wait_for_subscribes(2)
            assert sorted(fake.subscribe_messages) == [("/indices", "AM.I:SPX"), ("/stocks", "AM.SPY,AM.QQQ")]
            assert fake.auth_attempts == 2
            await fake.send_aggregates([am_event("SPY", MINUTE_0, 620.0, 620.5, 619.8, 620.2, 15000, 620.1),
                                        am_event("QQQ", MINUTE_0, 540.0, 540.3, 539.9, 540.1, 9000, 540.05)])
            stocks = await asyncio.wait_for(first, 5)
            await fake.send_aggregates([am_event("I:SPX", MINUTE_0, 6200.0, 6201.0, 6199.5, 6200.5)])
            index = await _next(batches)
            await batches.aclose()

        assert stocks["symbol"].tolist() == ["SPY", "QQQ"]
        spy = stocks.iloc[0]
        assert spy["start"] == pd.Timestamp("2025-07-01 13:31", tz="UTC")
        assert (spy["open"], spy["high"], spy["low"], spy["close"]) == (620.0, 620.5, 619.8, 620.2)
        assert spy["volume"] == 15000 and spy["vwap"] == 620.1
        assert spy["session"] == "regular" and spy["source"] == "polygon_ws"
        assert index["symbol"].tolist() == ["I:SPX"]
        assert index["volume"].isna().all() and index["vwap"].isna().all()

    _run(scenario())


def test_dropped_connection_reconnects_resubscribes_and_bars_keep_coming():
    async def scenario() -> None:
        async with FakePolygonWebSocket() as fake:
            source = _source(fake, ["SPY"])
            batches = source.batches()
            first = asyncio.ensure_future(anext(batches))
            await fake.wait_for_subscribes(1)
            await fake.send_aggregates([am_event("SPY", MINUTE_0, 620.0, 620.5, 619.8, 620.2)])
            before = await asyncio.wait_for(first, 5)

            fake.drop_all()
            await fake.wait_for_subscribes(2)
            after_future = asyncio.ensure_future(anext(batches))
            await fake.send_aggregates([am_event("SPY", MINUTE_1, 620.2, 620.9, 620.1, 620.8)])
            after = await asyncio.wait_for(after_future, 5)
            await batches.aclose()

        assert fake.auth_attempts == 2 and source.subscriptions == 2
        assert fake.subscribe_messages == [("/stocks", "AM.SPY"), ("/stocks", "AM.SPY")]
        assert before["start"].tolist() == [pd.Timestamp(MINUTE_0, unit="ms", tz="UTC")]
        assert after["start"].tolist() == [pd.Timestamp(MINUTE_1, unit="ms", tz="UTC")]
        assert after["close"].tolist() == [620.8]

    _run(scenario())


def test_a_resent_minute_is_yielded_again_with_its_updated_values():
    async def scenario() -> list[pd.DataFrame]:
        async with FakePolygonWebSocket() as fake:
            batches = _source(fake, ["SPY"]).batches()
            first = asyncio.ensure_future(anext(batches))
            await fake.wait_for_subscribes(1)
            await fake.send_aggregates([am_event("SPY", MINUTE_0, 620.0, 620.5, 619.8, 620.2, 15000)])
            original = await asyncio.wait_for(first, 5)
            await fake.send_aggregates([am_event("SPY", MINUTE_0, 620.0, 620.6, 619.8, 620.4, 15250)])
            updated = await _next(batches)
            # both versions in one message: the later one wins inside the batch
            await fake.send_aggregates([am_event("SPY", MINUTE_0, 620.0, 620.6, 619.8, 620.4, 15250),
                                        am_event("SPY", MINUTE_0, 620.0, 620.7, 619.8, 620.5, 15300)])
            latest = await _next(batches)
            await batches.aclose()
        return [original, updated, latest]

    original, updated, latest = _run(scenario())
    assert original["start"].equals(updated["start"])
    assert (original["close"].item(), original["volume"].item()) == (620.2, 15000)
    assert (updated["close"].item(), updated["high"].item(), updated["volume"].item()) == (620.4, 620.6, 15250)
    assert len(latest) == 1 and latest["close"].item() == 620.5


def test_a_refused_key_ends_the_stream_with_a_clear_error():
    async def scenario() -> None:
        async with FakePolygonWebSocket(api_key="the-real-key") as fake:
            batches = _source(fake, ["SPY"], key="wrong").batches()
            with pytest.raises(PolygonStreamAuthError, match="bad key"):
                await _next(batches)
            assert fake.auth_attempts == 1

    _run(scenario())


def test_unreachable_cluster_gives_up_after_max_failures():
    async def scenario() -> None:
        async with FakePolygonWebSocket() as fake:
            url = fake.url
        source = PolygonWebSocketSource("test-key", ["SPY"], stocks_url=f"{url}/stocks",
                                        reconnect=ReconnectPolicy(initial_s=0.01, max_failures=3))
        with pytest.raises(PolygonUnavailable, match="gave up after 3 failed connections"):
            await _next(source.batches())

    _run(scenario())
