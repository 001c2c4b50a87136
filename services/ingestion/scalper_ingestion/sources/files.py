"""File source: Polygon-shaped minute aggregates in CSV (gzip or not) or Parquet.

Columns ``t,o,h,l,c,v[,vw,n]`` (``t`` = bar start, epoch ms UTC), one symbol per file, named by the
caller. Read in chunks of ``chunk_rows`` so a large file never sits in memory at once. Every row is
yielded, sessions labelled by the market calendar; rows outside 04:00-20:00 ET or on closed days get
``session=None`` and are quarantined by :func:`scalper_ingestion.quality.validate`, never dropped here.

An equity file needs its volume column ``v`` (the volume features and the strong-setup rule use it);
``allow_no_volume`` imports one without it, the volume stored as NULL as for an index. A file that
cannot be read raises :class:`FileFormatError`, one line naming the file, the row when known and the
problem (empty, no header, binary, truncated or corrupt compression, malformed CSV or Parquet).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scalper_ingestion.sources.base import from_polygon_aggs, is_index

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("t", "o", "h", "l", "c")
VOLUME_COLUMN = "v"
PARQUET_SUFFIXES = {".parquet", ".pq"}


class FileFormatError(ValueError):
    """A bar file that cannot be read; the message is one line: ``path: [row N: ]problem``."""

    def __init__(self, path: Path, problem: str, row: int | None = None) -> None:
        self.path, self.problem, self.row = path, problem, row
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{path}: {where}{problem}")


class PolygonFileSource:
    """Bars of ``symbol`` from the Polygon-shaped file at ``path``, one batch per chunk."""

    def __init__(self, path: Path | str, symbol: str, *, chunk_rows: int = 100_000,
                 source: str = "file", allow_no_volume: bool = False) -> None:
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.symbol = symbol
        self.chunk_rows = chunk_rows
        self.source = source
        self.allow_no_volume = allow_no_volume

    def batches(self) -> Iterator[pd.DataFrame]:
        rows = 0
        chunks = self._chunks()
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except FileFormatError:
                raise
            except Exception as exc:  # noqa: BLE001 - every reader failure becomes one line
                raise self._failure(exc, rows) from exc
            if rows == 0:
                self._check_columns(chunk)
            rows += len(chunk)
            yield from_polygon_aggs(chunk, self.symbol, self.source)
        if rows == 0:
            raise FileFormatError(self.path, "no rows (a header t,o,h,l,c[,v,vw,n] and at least one bar needed)")
        logger.info("read %s rows of %s from %s", rows, self.symbol, self.path)

    def _check_columns(self, chunk: pd.DataFrame) -> None:
        missing = [column for column in REQUIRED_COLUMNS if column not in chunk.columns]
        if missing:
            raise FileFormatError(self.path, f"not a Polygon aggregates file: missing columns {missing} (the "
                                             f"header row must name t,o,h,l,c[,v,vw,n])", row=1)
        if VOLUME_COLUMN not in chunk.columns and not is_index(self.symbol) and not self.allow_no_volume:
            raise FileFormatError(self.path, f"no volume column {VOLUME_COLUMN!r}: an equity file needs one "
                                             "(--no-volume imports it anyway, volume features unavailable)", row=1)

    def _failure(self, exc: Exception, rows: int) -> FileFormatError:
        """The one-line error of a reader failure after ``rows`` rows were read."""
        near = rows + 1 if rows else None
        if isinstance(exc, pd.errors.EmptyDataError):
            return FileFormatError(self.path, "empty file (no header, no rows)")
        if isinstance(exc, pd.errors.ParserError):
            return FileFormatError(self.path, f"malformed CSV: {str(exc).strip().splitlines()[-1]}")
        if isinstance(exc, UnicodeDecodeError):
            return FileFormatError(self.path, f"not a text CSV (undecodable byte 0x{exc.object[exc.start]:02x})",
                                   row=near)
        if isinstance(exc, EOFError | gzip.BadGzipFile | zlib.error):
            return FileFormatError(self.path, f"truncated or corrupt compressed data ({exc or 'unexpected end'})",
                                   row=near)
        if isinstance(exc, pa.ArrowException):
            return FileFormatError(self.path, f"not a readable Parquet file ({exc})")
        return FileFormatError(self.path, f"unreadable ({type(exc).__name__}: {exc})", row=near)

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.path.suffix.lower() in PARQUET_SUFFIXES:
            for record_batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows):
                yield record_batch.to_pandas()
        else:
            with pd.read_csv(self.path, chunksize=self.chunk_rows, compression="infer") as reader:
                yield from reader
