"""Live mode: Polygon websocket minute aggregates through the writer, until told to stop.

Each received message becomes one batch: validated, upserted, committed, then published (a minute
that Polygon sends again with late trades replaces the stored bar and is published again with a new
id). The blocking database/Redis write runs in a worker thread so the websocket keeps reading.
A batch that fails to write (database down) is logged and dropped; the service keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from scalper_ingestion.settings import IngestionSettings
from scalper_ingestion.sources.polygon_ws import PolygonWebSocketSource
from scalper_ingestion.writer import BarWriter, WriteResult

logger = logging.getLogger(__name__)

STOP_POLL_S = 0.2


def make_live_source(settings: IngestionSettings) -> PolygonWebSocketSource:
    return PolygonWebSocketSource(settings.polygon_api_key, settings.symbol_list,
                                  stocks_url=settings.polygon_stocks_ws_url,
                                  indices_url=settings.polygon_indices_ws_url)


async def consume_live(source: PolygonWebSocketSource, writer: BarWriter,
                       on_batch: Callable[[WriteResult], None] | None = None) -> None:
    """Write every batch the websocket delivers; returns only if the source ends (auth refused ...)."""
    async for batch in source.batches():
        try:
            result = await asyncio.to_thread(writer.write, batch)
        except Exception:
            logger.exception("live batch of %s bars could not be written; dropped", len(batch))
            continue
        if on_batch is not None:
            on_batch(result)


async def run_live(source: PolygonWebSocketSource, writer: BarWriter, stop: threading.Event,
                   on_batch: Callable[[WriteResult], None] | None = None) -> None:
    """:func:`consume_live` until ``stop`` is set (checked every 0.2 s) or the source ends."""
    consumer = asyncio.create_task(consume_live(source, writer, on_batch), name="ingestion-live")
    try:
        while not consumer.done() and not stop.is_set():
            await asyncio.wait({consumer}, timeout=STOP_POLL_S)
    finally:
        if not consumer.done():
            consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    logger.info("live ingestion stopped")


def live_worker_target(settings: IngestionSettings, writer: BarWriter) -> Callable[[threading.Event], None]:
    """The body of the service's live :class:`~scalper_shared.runtime.app.ThreadWorker`."""
    def target(stop: threading.Event) -> None:
        asyncio.run(run_live(make_live_source(settings), writer, stop))
    return target
