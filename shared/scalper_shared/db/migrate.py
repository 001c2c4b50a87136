"""Run the packaged Alembic migrations programmatically (services, the CLI and tests call these).

The migration scripts ship inside the package (``scalper_shared/db/migrations``), so an installed copy
can migrate without a checkout. Concurrent ``migrate`` calls (several services starting at once)
serialise on a PostgreSQL advisory lock taken by ``migrations/env.py``; threads of one process
on a lock here (Alembic's ``context`` is global to the process).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine

from scalper_shared.db.engine import make_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

Target = str | URL | Engine
_ALEMBIC_LOCK = threading.Lock()  # alembic.context is process-global: one run per process at a time


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged scripts; ``connection`` is the one ``env.py`` migrates."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connection(target: Target) -> Iterator[Connection]:
    """A connection inside a transaction that commits on success; engines built here are disposed."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        if engine is not target:
            engine.dispose()


def _describe(target: Target) -> str:
    url = target.url if isinstance(target, Engine) else target
    return url.render_as_string(hide_password=True) if isinstance(url, URL) else str(url).split("@")[-1]


def migrate(target: Target, revision: str = "head") -> None:
    """Upgrade the database at ``target`` (URL or engine) to ``revision``; a no-op when already there."""
    logger.info("migrating database %s to %s", _describe(target), revision)
    with _ALEMBIC_LOCK, _connection(target) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(target: Target, revision: str) -> None:
    """Downgrade the database at ``target`` to ``revision`` (``"base"`` removes every table)."""
    logger.info("downgrading database %s to %s", _describe(target), revision)
    with _ALEMBIC_LOCK, _connection(target) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(target: Target) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    with _connection(target) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head
