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


def _admin(target: URL, timeout_s: float) -> tuple[Engine, str]:
    """An autocommit engine on the server's maintenance database, and ``target``'s quoted name."""
    if not target.database or target.database == MAINTENANCE_DATABASE:
        raise ValueError(f"refusing to create or drop database {target.database!r}")
    admin = make_engine(target.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT", poolclass=NullPool,
                        connect_args={"connect_timeout": max(1, round(timeout_s))})
    return admin, admin.dialect.identifier_preparer.quote(target.database)


def database_exists(url: str | URL, timeout_s: float = 10.0) -> bool:
    target = database_url(url)
    admin, _ = _admin(target, timeout_s)
    try:
        with admin.connect() as connection:
            return connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                      {"name": target.database}).first() is not None
    finally:
        admin.dispose()


def _run_on_maintenance(target: URL, statement: str, timeout_s: float) -> None:
    """Run ``statement`` (``{name}`` = the target's quoted name) in autocommit on the maintenance database."""
    admin, name = _admin(target, timeout_s)
    try:
        with admin.connect() as connection:
            connection.execute(text(statement.format(name=name)))
    finally:
        admin.dispose()


def drop_database(url: str | URL, timeout_s: float = 10.0) -> bool:
    """Drop ``url``'s database (closing its connections) if it exists; True if it was dropped."""
    target = database_url(url)
    if not database_exists(target, timeout_s):
        return False
    _run_on_maintenance(target, "DROP DATABASE IF EXISTS {name} WITH (FORCE)", timeout_s)
    return True


def create_database(url: str | URL, timeout_s: float = 10.0) -> bool:
    """Create ``url``'s database unless it exists; True if it was created."""
    target = database_url(url)
    if database_exists(target, timeout_s):
        return False
    _run_on_maintenance(target, "CREATE DATABASE {name}", timeout_s)
    return True


def recreate_database(url: str | URL) -> None:
    """Drop ``url``'s database (closing its connections) if it exists, then create it empty."""
    drop_database(url)
    create_database(url)
