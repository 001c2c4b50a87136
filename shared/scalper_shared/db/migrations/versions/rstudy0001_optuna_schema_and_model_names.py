"""Studies: the ``optuna`` schema for Optuna's RDB storage, and ``models.name``.

Optuna creates its own tables (and its own ``alembic_version``) in the schema ``optuna`` the first
time a study storage is opened (``scalper_shared.studies.open_storage``); the project's
``alembic_version`` in ``public`` is never touched by it. ``models.name`` names a model: a study
registers its best trial's model under the study's name.

Revision ID: study0001
Revises: opt0001
Create Date: 2026-12-05 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "study0001"
down_revision: str | None = "opt0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS optuna")
    op.add_column("models", sa.Column("name", sa.Text(), nullable=True))
    op.create_index("ix_models_name", "models", ["name"])


def downgrade() -> None:
    op.drop_index("ix_models_name", table_name="models")
    op.drop_column("models", "name")
    op.execute("DROP SCHEMA IF EXISTS optuna CASCADE")
