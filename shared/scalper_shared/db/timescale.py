"""TimescaleDB when the server has it, plain PostgreSQL otherwise (used by the migrations).

Compose runs the TimescaleDB image; a developer machine may run plain PostgreSQL. Time-series
tables are hypertables in the first case and ordinary tables in the second; queries are the same.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_INTERVAL = "30 days"


def timescaledb_usable(connection: Connection) -> bool:
    """True when the extension is installed, or available and preloaded (so CREATE EXTENSION works)."""
    row = connection.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed,"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,"
        " coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' AS preloaded"
    )).one()
    if row.available and not (row.installed or row.preloaded):
        logger.warning("timescaledb is available but not in shared_preload_libraries; using plain tables")
    return bool(row.installed or (row.available and row.preloaded))


def make_hypertable(connection: Connection, table: str, time_column: str,
                    chunk_interval: str = DEFAULT_CHUNK_INTERVAL) -> bool:
    """Make ``table`` a hypertable on ``time_column`` if TimescaleDB is usable; returns whether it did."""
    if not timescaledb_usable(connection):
        logger.info("table %s: plain PostgreSQL table (timescaledb extension not available)", table)
        return False
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    new_interface = connection.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'by_range')")).scalar_one()
    params = {"table": table, "column": time_column, "interval": chunk_interval}
    if new_interface:  # TimescaleDB >= 2.13
        sql = ("SELECT create_hypertable(CAST(:table AS regclass),"
               " by_range(CAST(:column AS name), CAST(:interval AS interval)), if_not_exists => TRUE)")
    else:
        sql = ("SELECT create_hypertable(CAST(:table AS regclass), CAST(:column AS name),"
               " chunk_time_interval => CAST(:interval AS interval), if_not_exists => TRUE)")
    connection.execute(text(sql), params)
    logger.info("table %s: TimescaleDB hypertable on %s, chunks of %s", table, time_column, chunk_interval)
    return True
