"""Polygon websocket live source: minute aggregates (``AM.<ticker>``) as bar batches.

Speaks Polygon's wire protocol with ``websockets`` (asyncio): the server greets with
``[{"ev":"status","status":"connected"}]``; we send ``{"action":"auth","params":KEY}`` and wait for
``auth_success``; then ``{"action":"subscribe","params":"AM.SPY,AM.QQQ"}``; the server streams JSON
arrays of ``AM`` events (``sym``, ``s`` = bar start ms, ``e``, ``o,h,l,c``, ``v``, ``vw``, ...).
Stocks and indices live on different clusters (``/stocks``, ``/indices``): one connection each.

A dropped connection is reopened with exponential backoff and the subscriptions are sent again.
A minute sent again (late trades) is yielded again with its new values; downstream upserts
replace the earlier version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from scalper_ingestion.sources.base import conform_bars, empty_bars, from_polygon_aggs, is_index
from scalper_ingestion.sources.polygon_rest import PolygonError, PolygonUnavailable

logger = logging.getLogger(__name__)

SOURCE_NAME = "polygon_ws"
STOCKS_URL = "wss://socket.polygon.io/stocks"
INDICES_URL = "wss://socket.polygon.io/indices"
DELAYED_STOCKS_URL = "wss://delayed.polygon.io/stocks"
DELAYED_INDICES_URL = "wss://delayed.polygon.io/indices"
AM_FIELDS = {"s": "t", "o": "o", "h": "h", "l": "l", "c": "c", "v": "v", "vw": "vw"}


class PolygonStreamAuthError(PolygonError):
    """The websocket refused the key (``auth_failed``): reconnecting cannot help."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Backoff between reconnects; ``max_failures`` consecutive failures end the stream (None: never)."""

    initial_s: float = 1.0
    max_s: float = 60.0
    max_failures: int | None = None
    open_timeout_s: float = 10.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, failures - 1))


def aggregates_to_bars(events: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``AM`` events as a bar batch; a minute repeated within ``events`` keeps its last version."""
    if not events:
        return empty_bars()
    raw = pd.DataFrame([{column: event.get(field) for field, column in AM_FIELDS.items()} | {"sym": event.get("sym")}
                        for event in events])
    frames = [from_polygon_aggs(group.drop(columns="sym"), str(symbol), SOURCE_NAME)
              for symbol, group in raw.groupby("sym", sort=False)]
    bars = conform_bars(pd.concat(frames, ignore_index=True))
    return bars.drop_duplicates(subset=["symbol", "start"], keep="last").reset_index(drop=True)


class PolygonWebSocketSource:
    """Live minute bars of ``symbols`` (``I:`` tickers go to the indices cluster).

    ``batches()`` is an async iterator of one batch per received message with ``AM`` events; it runs
    until the consumer stops iterating, the key is refused, or ``max_failures`` reconnects fail.
    """

    def __init__(self, api_key: str, symbols: Sequence[str], *, stocks_url: str = STOCKS_URL,
                 indices_url: str = INDICES_URL, reconnect: ReconnectPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not api_key:
            raise PolygonError("no Polygon API key given (set POLYGON_API_KEY)")
        self.api_key = api_key
        self.reconnect = reconnect or ReconnectPolicy()
        self._sleep = sleep
        stocks = [s for s in symbols if not is_index(s)]
        indices = [s for s in symbols if is_index(s)]
        self.feeds: dict[str, list[str]] = {url: syms for url, syms in
                                            ((stocks_url, stocks), (indices_url, indices)) if syms}
        self.subscriptions = 0

    async def batches(self) -> AsyncIterator[pd.DataFrame]:
        queue: asyncio.Queue[pd.DataFrame | BaseException] = asyncio.Queue()
        tasks = [asyncio.create_task(self._run_feed(url, syms, queue), name=f"polygon-ws {url}")
                 for url, syms in self.feeds.items()]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run_feed(self, url: str, symbols: list[str],
                        queue: asyncio.Queue[pd.DataFrame | BaseException]) -> None:
        failures = 0
        while True:
            try:
                async with connect(url, open_timeout=self.reconnect.open_timeout_s, max_queue=None) as ws:
                    await self._handshake(ws, url, symbols)
                    failures = 0
                    await self._pump(ws, url, queue)
                reason = "server closed the connection"
            except PolygonStreamAuthError as exc:
                queue.put_nowait(exc)
                return
            except (ConnectionClosed, InvalidHandshake, InvalidURI, OSError, TimeoutError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            failures += 1
            if self.reconnect.max_failures is not None and failures >= self.reconnect.max_failures:
                queue.put_nowait(PolygonUnavailable(f"Polygon websocket {url}: gave up after {failures} "
                                                    f"failed connections, last {reason}"))
                return
            delay = self.reconnect.delay(failures)
            logger.warning("Polygon websocket %s lost (%s); reconnecting in %.2fs", url, reason, delay)
            await self._sleep(delay)

    async def _handshake(self, ws: ClientConnection, url: str, symbols: list[str]) -> None:
        await self._expect_status(ws, url, {"connected"})
        await ws.send(json.dumps({"action": "auth", "params": self.api_key}))
        await self._expect_status(ws, url, {"auth_success"})
        params = ",".join(f"AM.{symbol}" for symbol in symbols)
        await ws.send(json.dumps({"action": "subscribe", "params": params}))
        self.subscriptions += 1
        logger.info("Polygon websocket %s subscribed to %s", url, params)

    async def _expect_status(self, ws: ClientConnection, url: str, wanted: set[str]) -> None:
        """Read status messages until one in ``wanted``; ``auth_failed`` raises."""
        while True:
            for event in json.loads(await ws.recv()):
                status = event.get("status")
                if event.get("ev") != "status":
                    continue
                if status == "auth_failed":
                    raise PolygonStreamAuthError(f"Polygon websocket {url} refused the key: bad key "
                                                 f"({event.get('message', '')})")
                if status in wanted:
                    return
                logger.info("Polygon websocket %s status %s: %s", url, status, event.get("message"))

    async def _pump(self, ws: ClientConnection, url: str,
                    queue: asyncio.Queue[pd.DataFrame | BaseException]) -> None:
        async for message in ws:
            try:
                events = json.loads(message)
            except ValueError:
                logger.warning("Polygon websocket %s sent a message that is not JSON: %.200r", url, message)
                continue
            aggregates = [e for e in events if e.get("ev") == "AM"]
            for event in events:
                if event.get("ev") == "status":
                    logger.info("Polygon websocket %s status %s: %s", url, event.get("status"),
                                event.get("message"))
            if aggregates:
                queue.put_nowait(aggregates_to_bars(aggregates))
