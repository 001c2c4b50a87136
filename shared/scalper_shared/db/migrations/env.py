"""Alembic environment: migrates the connection handed over by ``scalper_shared.db.migrate``.

Run from the ``alembic`` command line instead, it connects to ``DATABASE_URL``. Every run holds a
transaction-scoped advisory lock, so services migrating at the same start-up take turns.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, text

from scalper_shared.db.engine import make_engine
from scalper_shared.db.models import Base
from scalper_shared.settings import DEFAULT_DATABASE_URL

MIGRATION_LOCK_KEY = 0x5CA1_9E12  # any constant bigint; shared by every scalper migrator


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def _run_offline() -> None:
    context.configure(url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
                      target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
            own_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
