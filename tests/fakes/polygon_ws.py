"""A fake Polygon websocket cluster: a ``websockets`` server on 127.0.0.1 doing Polygon's exchange.

``connected`` status on open, ``auth`` -> ``auth_success`` / ``auth_failed``, ``subscribe`` ->
``success`` status per channel, then whatever ``AM`` events the test pushes to the connections
subscribed to them. :meth:`FakePolygonWebSocket.drop_all` cuts every connection without a close
frame, as a network failure would. Any path (``/stocks``, ``/indices``) is accepted and recorded.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def am_event(symbol: str, start_ms: int, o: float, h: float, l: float, c: float,  # noqa: E741
             volume: float | None = 1000.0, vwap: float | None = None) -> dict[str, Any]:
    """A Polygon ``AM`` event; index tickers (``I:``) carry no volume/VWAP fields, as on the real feed."""
    event: dict[str, Any] = {"ev": "AM", "sym": symbol, "op": o, "o": o, "c": c, "h": h, "l": l,
                             "s": start_ms, "e": start_ms + 60_000}
    if not symbol.startswith("I:"):
        event.update(v=volume, av=(volume or 0) * 100, vw=vwap if vwap is not None else (h + l) / 2,
                     a=(h + l) / 2, z=25)
    return event


@dataclass
class FakeConnection:
    path: str
    ws: ServerConnection
    subscriptions: set[str] = field(default_factory=set)


class FakePolygonWebSocket:
    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.connections: list[FakeConnection] = []
        self.auth_attempts = 0
        self.subscribe_messages: list[tuple[str, str]] = []
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def __aenter__(self) -> FakePolygonWebSocket:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_for_subscribes(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` subscribe messages have arrived in total (across reconnects)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.subscribe_messages) >= count), timeout)

    async def send_aggregates(self, events: list[dict[str, Any]]) -> int:
        """Send ``events`` as one message to each open connection, filtered by its subscriptions."""
        sent = 0
        for conn in list(self.connections):
            mine = [e for e in events if f"AM.{e['sym']}" in conn.subscriptions or "AM.*" in conn.subscriptions]
            if mine:
                try:
                    await conn.ws.send(json.dumps(mine))
                    sent += 1
                except ConnectionClosed:
                    pass
        return sent

    def drop_all(self) -> None:
        """Cut every connection at the transport (no close handshake)."""
        for conn in self.connections:
            conn.ws.transport.abort()
        self.connections.clear()

    async def _status(self, ws: ServerConnection, status: str, message: str) -> None:
        await ws.send(json.dumps([{"ev": "status", "status": status, "message": message}]))

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws.request.path if ws.request else "/", ws)
        try:
            await self._status(ws, "connected", "Connected Successfully")
            auth = json.loads(await ws.recv())
            self.auth_attempts += 1
            if auth.get("action") != "auth" or auth.get("params") != self.api_key:
                await self._status(ws, "auth_failed", "authentication failed")
                await ws.close()
                return
            await self._status(ws, "auth_success", "authenticated")
            self.connections.append(conn)
            async for raw in ws:
                await self._on_action(conn, json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            if conn in self.connections:
                self.connections.remove(conn)

    async def _on_action(self, conn: FakeConnection, message: dict[str, Any]) -> None:
        channels = [c for c in str(message.get("params", "")).split(",") if c]
        if message.get("action") == "subscribe":
            conn.subscriptions.update(channels)
            for channel in channels:
                await self._status(conn.ws, "success", f"subscribed to: {channel}")
            async with self._changed:
                self.subscribe_messages.append((conn.path, message["params"]))
                self._changed.notify_all()
        elif message.get("action") == "unsubscribe":
            conn.subscriptions.difference_update(channels)
