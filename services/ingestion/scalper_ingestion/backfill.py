"""Backfill jobs: any finite bar source through the writer, batch by batch, with a summed result.

:func:`make_history_source` picks the source of ``scalper ingest backfill``: Polygon REST when a key
is set (or asked for), the embedded synthetic market otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from enum import StrEnum
from pathlib import Path

from scalper_ingestion.settings import IngestionSettings
from scalper_ingestion.sources.base import BarSource
from scalper_ingestion.sources.cache import AggsCache
from scalper_ingestion.sources.files import PolygonFileSource
from scalper_ingestion.sources.polygon_rest import PolygonRestSource, RestPolicy
from scalper_ingestion.sources.synthetic import SyntheticSource
from scalper_ingestion.writer import BarWriter, WriteResult

logger = logging.getLogger(__name__)

OnBatch = Callable[[WriteResult], None]
BACKFILL_SLICE_ROWS = 8_192
"""Bars per committed slice: small enough that publishing one overlaps writing the next."""


class SourceKind(StrEnum):
    POLYGON = "polygon"
    SYNTHETIC = "synthetic"


def default_source_kind(settings: IngestionSettings) -> SourceKind:
    """Polygon when ``POLYGON_API_KEY`` is set, the synthetic market otherwise."""
    return SourceKind.POLYGON if settings.polygon_api_key else SourceKind.SYNTHETIC


def make_history_source(kind: SourceKind, settings: IngestionSettings, symbols: Sequence[str], start: date,
                        end: date, *, refresh: bool = False) -> BarSource:
    """The bar source of a backfill of ``symbols`` over ``start..end`` (New York dates, inclusive)."""
    if kind is SourceKind.POLYGON:
        policy = RestPolicy(requests_per_minute=settings.polygon_requests_per_minute)
        return PolygonRestSource(settings.polygon_api_key, symbols, start, end,
                                 cache=AggsCache(settings.polygon_cache_dir), refresh=refresh, policy=policy,
                                 base_url=settings.polygon_rest_url)
    return SyntheticSource(tuple(symbols), start, end, settings.synthetic_seed)


def file_source(path: Path, symbol: str) -> PolygonFileSource:
    """A Polygon-shaped CSV(.gz)/Parquet file of one symbol."""
    return PolygonFileSource(path, symbol)


def run_backfill(source: BarSource, writer: BarWriter, *, on_batch: OnBatch | None = None,
                 slice_rows: int = BACKFILL_SLICE_ROWS) -> WriteResult:
    """Write every batch of ``source`` in committed slices of ``slice_rows`` bars; returns the totals.

    Publication is pipelined: while one slice's bars are encoded and published (in a helper thread,
    in order), the next slice is being written to the database. A slice is published only after
    its commit, and the job returns (or raises) only after every committed slice was published,
    so an interrupted job keeps and announces what it finished. ``on_batch`` sees each slice.
    """
    total = WriteResult()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-publish") as publisher:
        publishing: Future[int] | None = None
        try:
            for batch in source.batches():
                for stored in writer.store(batch, slice_rows=slice_rows):
                    if publishing is not None:
                        publishing.result()  # in order, one slice in flight; raises its error
                    publishing = publisher.submit(writer.publish, stored)
                    total = total + stored.result
                    if on_batch is not None:
                        on_batch(stored.result)
        finally:
            if publishing is not None:
                publishing.result()
    logger.info("backfill done: %s received, %s inserted, %s updated, %s unchanged, %s quarantined %s, "
                "%s published", total.received, total.inserted, total.updated, total.unchanged,
                total.quarantined, total.reasons, total.published)
    return total
