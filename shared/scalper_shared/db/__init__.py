"""Storage: the engine, table definitions, Alembic migrations and the bulk upsert.

``make_engine(url)`` builds the SQLAlchemy engine, ``migrate(url_or_engine)`` brings a database to the
newest schema (services call it at start; concurrent callers serialise on an advisory lock), and
``bulk_upsert(connection, table, rows)`` is the one way to write many rows (COPY + one
``INSERT .. ON CONFLICT``) inside the caller's transaction.
"""

from scalper_shared.db.engine import make_engine
from scalper_shared.db.migrate import current_revision, downgrade, head_revision, migrate
from scalper_shared.db.models import BarRow, Base, bars
from scalper_shared.db.upsert import DuplicateKeyError, UpsertResult, bulk_upsert

__all__ = [
    "BarRow",
    "Base",
    "DuplicateKeyError",
    "UpsertResult",
    "bars",
    "bulk_upsert",
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "migrate",
]
