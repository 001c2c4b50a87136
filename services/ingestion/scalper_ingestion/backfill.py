"""Backfill jobs: any finite bar source through the writer, batch by batch, with a summed result.

:func:`make_history_source` picks the source of ``scalper ingest backfill``: Polygon REST when a key
is set (or asked for), the embedded synthetic market otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
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
                        end: date, *, refresh: bool = False, synthetic_seed: int | None = None,
                        synthetic_edge: str | None = None) -> BarSource:
    """The bar source of a backfill of ``symbols`` over ``start..end`` (New York dates, inclusive)."""
    if kind is SourceKind.POLYGON:
        policy = RestPolicy(requests_per_minute=settings.polygon_requests_per_minute)
        return PolygonRestSource(settings.polygon_api_key, symbols, start, end,
                                 cache=AggsCache(settings.polygon_cache_dir), refresh=refresh, policy=policy,
                                 base_url=settings.polygon_rest_url)
    seed = settings.synthetic_seed if synthetic_seed is None else synthetic_seed
    return SyntheticSource(tuple(symbols), start, end, seed, synthetic_edge or settings.synthetic_edge)


def file_source(path: Path, symbol: str, *, allow_no_volume: bool = False) -> PolygonFileSource:
    """A Polygon-shaped CSV(.gz)/Parquet file of one symbol."""
    return PolygonFileSource(path, symbol, allow_no_volume=allow_no_volume)


class ImportFailed(RuntimeError):
    """A job stopped by an error, with what it had done: ``committed`` (the stored slices' counts),
    ``published`` (bars that reached ``md.bars``) and ``pending`` (stored bars still in the outbox,
    published by the next import or the ingestion service; None when the database did not answer)."""

    def __init__(self, cause: BaseException, committed: WriteResult, published: int, pending: int | None) -> None:
        self.cause, self.committed, self.published, self.pending = cause, committed, published, pending
        super().__init__(str(cause))


def run_backfill(source: BarSource, writer: BarWriter, *, on_batch: OnBatch | None = None,
                 slice_rows: int = BACKFILL_SLICE_ROWS) -> WriteResult:
    """Write every batch of ``source`` in committed slices of ``slice_rows`` bars; returns the totals.

    First the bars an earlier job stored but could not publish (the outbox) are published. Publication
    is pipelined: while one slice's bars are encoded and published (in a helper thread, in order), the
    next slice is being written to the database. A slice is published only after its commit, and the
    job returns only after every committed slice was published. On an error it raises
    :class:`ImportFailed` saying what it committed and published; what it could not publish stays in
    the outbox. ``on_batch`` sees each slice.
    """
    total = WriteResult()
    published = 0
    error: BaseException | None = None
    try:
        total = WriteResult(drained=writer.drain())
    except Exception as exc:  # noqa: BLE001 - reported with the counts below
        error = exc
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-publish") as publisher:
        publishing: Future[int] | None = None
        try:
            for batch in source.batches() if error is None else ():
                for stored in writer.store(batch, slice_rows=slice_rows):
                    total = total + stored.result  # committed
                    if on_batch is not None:
                        on_batch(stored.result)
                    if publishing is not None:
                        published += publishing.result()  # in order, one slice in flight; raises its error
                    publishing = publisher.submit(writer.publish, stored)
        except Exception as exc:  # noqa: BLE001 - reported with the counts below
            error = exc
        if publishing is not None:
            try:
                published += publishing.result()
            except Exception as exc:  # noqa: BLE001
                error = error or exc
    if error is not None:
        committed = replace(total, published=published)
        raise ImportFailed(error, committed, published + total.drained, _pending(writer)) from error
    logger.info("backfill done: %s received, %s inserted, %s updated, %s unchanged, %s quarantined %s, "
                "%s published, %s from the outbox", total.received, total.inserted, total.updated,
                total.unchanged, total.quarantined, total.reasons, total.published, total.drained)
    return total


def _pending(writer: BarWriter) -> int | None:
    try:
        return writer.pending()
    except Exception:  # noqa: BLE001 - the database may be the failure
        return None
