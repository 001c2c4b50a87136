"""Backfill jobs: any finite bar source through the writer, batch by batch, with a summed result.

:func:`make_history_source` picks the source of ``scalper ingest backfill``: Polygon REST when a key
is set (or asked for), the embedded synthetic market otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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


def run_backfill(source: BarSource, writer: BarWriter, *, on_batch: OnBatch | None = None) -> WriteResult:
    """Write every batch of ``source``; returns the totals. A batch's bars are committed (and
    published) before the next batch is read, so an interrupted job keeps what it finished."""
    total = WriteResult()
    for batch in source.batches():
        result = writer.write(batch)
        total = total + result
        if on_batch is not None:
            on_batch(result)
    logger.info("backfill done: %s received, %s inserted, %s updated, %s unchanged, %s quarantined %s, "
                "%s published", total.received, total.inserted, total.updated, total.unchanged,
                total.quarantined, total.reasons, total.published)
    return total
