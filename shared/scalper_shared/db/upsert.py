"""Bulk upsert: COPY rows into a temporary staging table, then ONE ``INSERT .. ON CONFLICT`` statement.

The single home for writing many rows (ingestion, features, backfills). It runs inside the caller's
transaction on a SQLAlchemy :class:`~sqlalchemy.Connection`, so the caller decides when to commit
(services publish to Redis only after the commit). Semantics:

- a row whose key is new is inserted;
- a row whose key exists and whose values differ replaces the stored values (``updated_at`` moves
  when the table has that column and the caller does not supply it);
- a row identical to the stored one changes nothing (not even ``updated_at``);
- rows are applied in the order given: concurrent writers of overlapping keys should send rows in
  key order, so their row locks are taken in the same order (no deadlock);
- a batch holding the same key twice is rejected with :class:`DuplicateKeyError` before anything is
  written: the caller dedupes (it knows which of two versions is right; this function does not).

Missing values are NULL whatever the input form: None, and NaN / NA / NaT in a DataFrame or a float NaN in
a tuple or mapping (an index bar's volume is NULL, never 0 or NaN). Database errors are raised as
SQLAlchemy exceptions (``IntegrityError`` for a violated constraint), as from ``Connection.execute``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from sqlalchemy import Connection, Float, Integer, Table
from sqlalchemy.exc import DBAPIError

logger = logging.getLogger(__name__)

Rows: TypeAlias = pd.DataFrame | Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]
TOUCH_COLUMN = "updated_at"
ROW_NUMBER_COLUMN = "_upsert_row_number"  # the staged row's position in the batch (returning=True only)
DUPLICATES_SHOWN = 3
WORK_MEM = "64MB"  # sort and duplicate check of a large batch stay in memory (this transaction only)


class DuplicateKeyError(ValueError):
    """The batch holds at least two rows with the same key; nothing was written."""


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """Row counts; ``changed`` (only with ``returning=True``) marks, for each row in the order
    given, whether it was inserted or changed its stored values."""

    staged: int
    inserted: int
    updated: int
    changed: npt.NDArray[np.bool_] | None = None

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def bulk_upsert(connection: Connection, table: Table, rows: Rows, *,
                columns: Sequence[str] | None = None, key: Sequence[str] | None = None,
                returning: bool = False) -> UpsertResult:
    """Insert new rows of ``table``, replace changed ones, leave identical ones alone.

    ``rows`` is a DataFrame (columns named like the table's), a sequence of mappings, or a sequence of
    tuples in the order of ``columns`` (required for tuples; for the other forms it defaults to the
    DataFrame's columns or the first mapping's keys). ``key`` defaults to the primary key. Columns
    not given keep their server defaults on insert and are not touched on update. With
    ``returning=True`` the result also marks the rows that were inserted or changed (what a writer
    publishes after the commit); identical rows are not marked.
    """
    batch = _batch(table, rows, columns, numbered=returning)
    key_names = list(key) if key is not None else [c.name for c in table.primary_key.columns]
    _check_columns(table, batch.names, key_names)
    if not batch.values:
        return UpsertResult(0, 0, 0, np.zeros(0, dtype=bool) if returning else None)
    _reject_duplicates(table, batch, key_names)
    sql = _Sql(table, batch.names, key_names, connection.dialect.identifier_preparer)
    raw = connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("bulk_upsert needs a connection of the psycopg 3 driver (postgresql+psycopg://)")
    with raw.cursor() as cursor:
        try:
            inserted, updated, changed = _stage_and_upsert(cursor, sql, batch, returning)
        except psycopg.Error as exc:
            raise DBAPIError.instance(None, None, exc, psycopg.Error, dialect=connection.dialect) from exc
    result = UpsertResult(len(batch.values), inserted, updated, changed)
    logger.debug("upsert into %s: %d staged, %d inserted, %d updated, %d unchanged",
                 table.name, result.staged, result.inserted, result.updated, result.unchanged)
    return result


def _stage_and_upsert(cursor: Any, sql: _Sql, batch: _Batch,
                      returning: bool) -> tuple[int, int, npt.NDArray[np.bool_] | None]:
    """COPY into a staging table, upsert; returns (inserted, updated, changed-row marks)."""
    cursor.execute("SELECT current_setting('work_mem'), set_config('work_mem', %s, true)", (WORK_MEM,))
    previous_work_mem = cursor.fetchone()[0]
    row_column = f", {sql.quote(ROW_NUMBER_COLUMN)} int4" if returning else ""
    cursor.execute(f"CREATE TEMP TABLE {sql.stage} (LIKE {sql.target} INCLUDING DEFAULTS{row_column})"
                   " ON COMMIT DROP")
    _copy_rows(cursor, sql, batch)
    changed: npt.NDArray[np.bool_] | None = None
    try:
        if returning:
            cursor.execute(sql.upsert_returning())
            inserted, changed_rows = cursor.fetchone()
            updated = len(changed_rows or ()) - inserted
            changed = np.zeros(len(batch.values), dtype=bool)
            changed[np.asarray(changed_rows or (), dtype=np.int64)] = True
        else:
            cursor.execute(sql.upsert())
            inserted, updated = cursor.fetchone()
    except psycopg.errors.CardinalityViolation as exc:  # keys equal to the server, not to Python
        raise DuplicateKeyError(f"batch for table {sql.table.name} repeats a key ({', '.join(sql.key)}):"
                                f" {exc} - dedupe the batch before upserting; nothing was written") from None
    cursor.execute(f"DROP TABLE {sql.stage}")
    cursor.execute("SELECT set_config('work_mem', %s, true)", (previous_work_mem,))
    return int(inserted), int(updated), changed


@dataclass(frozen=True, slots=True)
class _Batch:
    """Rows as tuples in the order of ``names`` (plus, when ``numbered``, the row's position last);
    ``copy_types`` overrides a column's COPY type."""

    names: list[str]
    values: list[tuple[Any, ...]]
    copy_types: dict[str, str]
    numbered: bool = False


def _batch(table: Table, rows: Rows, columns: Sequence[str] | None, *, numbered: bool = False) -> _Batch:
    if isinstance(rows, pd.DataFrame):
        names = list(columns) if columns is not None else [str(c) for c in rows.columns]
        return _frame_batch(table, rows, names, numbered)
    if not rows:
        return _Batch(list(columns or []), [], {}, numbered)
    first = rows[0]
    if isinstance(first, Mapping):
        names = list(columns) if columns is not None else [str(c) for c in first]
        values = [tuple(row[n] for n in names) for row in rows]  # type: ignore[call-overload]
    elif columns is None:
        raise ValueError("columns= is required when rows are tuples")
    else:
        names, values = list(columns), [tuple(row) for row in rows]
    if numbered:
        values = [(*row, number) for number, row in enumerate(values)]
    return _Batch(names, values, {}, numbered)


def _frame_batch(table: Table, frame: pd.DataFrame, names: list[str], numbered: bool) -> _Batch:
    """Python values column by column: NaN/NA/NaT -> None, floats bound for integer columns -> int.

    Time-zone-aware datetime columns become naive UTC datetimes sent with the ``timestamp`` binary
    format, which is byte-for-byte the ``timestamptz`` format of the same UTC instant; this is 20x
    faster than boxing every value as a ``pd.Timestamp``. Columns become lists first (numpy's
    ``tolist`` boxes in C), then rows are zipped from the lists.
    """
    columns, copy_types = [], {}
    for name in names:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            utc = series.dt.tz_convert("UTC").dt.tz_localize(None)
            columns.append(utc.to_numpy(dtype="datetime64[us]").tolist())  # NaT -> None
            copy_types[name] = "timestamp"
            continue
        if series.dtype.kind == "M":
            raise ValueError(f"column {name} holds naive datetimes; give time-zone-aware (UTC) values")
        column = table.columns.get(name)
        columns.append(_python_values(series, integer=column is not None and isinstance(column.type, Integer)))
    if numbered:
        columns.append(list(range(len(frame))))
    return _Batch(names, list(zip(*columns, strict=True)), copy_types, numbered)


def _python_values(series: pd.Series, *, integer: bool) -> list[Any]:
    """One column as Python scalars, missing values as None (floats for an integer column as ints)."""
    if integer and series.dtype.kind == "f":
        series = series.astype("Int64")
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        floats = series.to_numpy()
        values: list[Any] = floats.tolist()
        for position in np.flatnonzero(np.isnan(floats)).tolist():
            values[position] = None
        return values
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub":
        return series.to_numpy().tolist()
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _check_columns(table: Table, names: list[str], key_names: list[str]) -> None:
    unknown = [n for n in names if n not in table.columns]
    if unknown:
        raise ValueError(f"table {table.name} has no column(s) {unknown}")
    missing_key = [n for n in key_names if n not in names]
    if missing_key:
        raise ValueError(f"rows for table {table.name} lack key column(s) {missing_key}")
    if len(set(names)) != len(names):
        raise ValueError(f"columns for table {table.name} repeat a name: {names}")


class _Sql:
    """Quoted names and statements for one upsert of ``names`` into ``table`` keyed on ``key``."""

    def __init__(self, table: Table, names: list[str], key: list[str], preparer: Any) -> None:
        self.table, self.names, self.key = table, names, key
        self.quote = preparer.quote
        self.target = preparer.format_table(table)
        self.stage = self.quote(f"_stage_{table.name}")
        self.columns = ", ".join(self.quote(n) for n in names)
        self.key_list = ", ".join(self.quote(n) for n in key)

    def _selected(self, name: str) -> str:
        """A staged column as selected: float NaN becomes NULL (missing, never a number)."""
        column = self.quote(name)
        return f"NULLIF({column}, 'NaN')" if isinstance(self.table.c[name].type, Float) else column

    def _on_conflict(self) -> str:
        changing = [n for n in self.names if n not in self.key]
        if not changing:
            return "DO NOTHING"
        assignments = [f"{self.quote(n)} = EXCLUDED.{self.quote(n)}" for n in changing]
        if TOUCH_COLUMN in self.table.columns and TOUCH_COLUMN not in self.names:
            assignments.append(f"{self.quote(TOUCH_COLUMN)} = now()")
        old = ", ".join(f"t.{self.quote(n)}" for n in changing)
        new = ", ".join(f"EXCLUDED.{self.quote(n)}" for n in changing)
        return f"DO UPDATE SET {', '.join(assignments)} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"

    def upsert(self) -> str:
        """One INSERT .. ON CONFLICT in the batch's own order (an ORDER BY costs ~20% for no gain to
        the usual single writer per symbol); counts inserts vs updates with ``xmax = 0``."""
        selected = ", ".join(self._selected(n) for n in self.names)
        return (f"WITH upserted AS (INSERT INTO {self.target} AS t ({self.columns})"
                f" SELECT {selected} FROM {self.stage}"
                f" ON CONFLICT ({self.key_list}) {self._on_conflict()} RETURNING (xmax = 0) AS inserted)"
                " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted")

    def upsert_returning(self) -> str:
        """The same upsert, returning the inserted count and the batch positions (staged row numbers)
        of every inserted or changed row; RETURNING sees only the target row, hence the join back."""
        selected = ", ".join(self._selected(n) for n in self.names)
        keys = ", ".join(f"t.{self.quote(n)}" for n in self.key)
        joined = " AND ".join(f"s.{self.quote(n)} = u.{self.quote(n)}" for n in self.key)
        return (f"WITH upserted AS (INSERT INTO {self.target} AS t ({self.columns})"
                f" SELECT {selected} FROM {self.stage}"
                f" ON CONFLICT ({self.key_list}) {self._on_conflict()} RETURNING {keys}, (xmax = 0) AS inserted)"
                f" SELECT count(*) FILTER (WHERE u.inserted), array_agg(s.{self.quote(ROW_NUMBER_COLUMN)})"
                f" FROM upserted u JOIN {self.stage} s ON {joined}")


def _copy_rows(cursor: Any, sql: _Sql, batch: _Batch) -> None:
    """Binary COPY of the batch into the staging table (with each row's position when numbered)."""
    cursor.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attname = ANY(%s)", (sql.stage, batch.names))
    stage_types = dict(cursor.fetchall())
    types = [batch.copy_types.get(n, stage_types[n]) for n in batch.names]
    columns = sql.columns
    if batch.numbered:
        columns += f", {sql.quote(ROW_NUMBER_COLUMN)}"
        types.append("int4")
    with cursor.copy(f"COPY {sql.stage} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in batch.values:
            copy.write_row(row)


def _reject_duplicates(table: Table, batch: _Batch, key: list[str]) -> None:
    """Raise :class:`DuplicateKeyError` naming a few repeated keys (checked here, before any write:
    the server would find them only halfway through the upsert)."""
    positions = [batch.names.index(n) for n in key]
    keys = list(map(itemgetter(*positions), batch.values))
    if len(set(keys)) == len(keys):
        return
    first_at: dict[Any, int] = {}
    repeated = [i for i, k in enumerate(keys) if first_at.setdefault(k, i) != i]
    shown = ", ".join(repr(tuple(str(batch.values[i][p]) for p in positions)) for i in repeated[:DUPLICATES_SHOWN])
    raise DuplicateKeyError(
        f"batch for table {table.name} repeats key(s) ({', '.join(key)}): {shown}"
        " - dedupe the batch before upserting; nothing was written")
