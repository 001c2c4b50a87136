"""File source: Polygon-shaped minute aggregates in CSV (gzip or not) or Parquet.

Columns ``t,o,h,l,c,v[,vw,n]`` (``t`` = bar start, epoch ms UTC), one symbol per file, named by the
caller. Read in chunks of ``chunk_rows`` so a large file never sits in memory at once. Every row is
yielded, sessions labelled by the market calendar; rows outside 04:00-20:00 ET or on closed days get
``session=None`` and are quarantined by :func:`scalper_ingestion.quality.validate`, never dropped here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from scalper_ingestion.sources.base import from_polygon_aggs

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("t", "o", "h", "l", "c")
PARQUET_SUFFIXES = {".parquet", ".pq"}


class PolygonFileSource:
    """Bars of ``symbol`` from the Polygon-shaped file at ``path``, one batch per chunk."""

    def __init__(self, path: Path | str, symbol: str, *, chunk_rows: int = 100_000,
                 source: str = "file") -> None:
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.symbol = symbol
        self.chunk_rows = chunk_rows
        self.source = source

    def batches(self) -> Iterator[pd.DataFrame]:
        rows = 0
        for chunk in self._chunks():
            missing = [column for column in REQUIRED_COLUMNS if column not in chunk.columns]
            if missing:
                raise ValueError(f"{self.path}: not a Polygon aggregates file, missing columns {missing}")
            rows += len(chunk)
            yield from_polygon_aggs(chunk, self.symbol, self.source)
        logger.info("read %s rows of %s from %s", rows, self.symbol, self.path)

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.path.suffix.lower() in PARQUET_SUFFIXES:
            for record_batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows):
                yield record_batch.to_pandas()
        else:
            with pd.read_csv(self.path, chunksize=self.chunk_rows, compression="infer") as reader:
                yield from reader
