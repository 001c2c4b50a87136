"""The SQLAlchemy engine every service and tool uses (psycopg 3 driver, connections pinged on checkout)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

PSYCOPG_DRIVER = "postgresql+psycopg"


def database_url(url: str | URL) -> URL:
    """``url`` with the psycopg 3 driver (``postgres://`` and ``postgresql://`` are accepted)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=PSYCOPG_DRIVER)
    if parsed.drivername != PSYCOPG_DRIVER:
        raise ValueError(f"database URL must be PostgreSQL via psycopg 3, got driver {parsed.drivername!r}")
    return parsed


def make_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for ``url``; stale pooled connections are replaced (``pool_pre_ping``).

    ``options`` are passed to :func:`sqlalchemy.create_engine` (``pool_size``, ``echo`` ...).
    """
    options.setdefault("pool_pre_ping", True)
    return create_engine(database_url(url), **options)


MAINTENANCE_DATABASE = "postgres"


def recreate_database(url: str | URL) -> None:
    """Drop ``url``'s database (closing its connections) if it exists, then create it empty."""
    target = database_url(url)
    if not target.database or target.database == MAINTENANCE_DATABASE:
        raise ValueError(f"refusing to recreate database {target.database!r}")
    admin = make_engine(target.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = admin.dialect.identifier_preparer.quote(target.database)
    try:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
