"""Create the features table (a hypertable on ``minute`` when TimescaleDB is available).

Revision ID: feat0001
Revises: train0001
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scalper_shared.db.timescale import make_hypertable

revision: str = "feat0001"
down_revision: str | None = "train0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("symbol", sa.Text(collation="C"), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec_hash", sa.Text(), nullable=False),
        sa.Column("values", postgresql.ARRAY(sa.Double()), nullable=False),
        sa.Column("real", sa.Boolean(), nullable=False),
        sa.Column("published", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "minute", "spec_hash", name=op.f("pk_features")),
    )
    op.create_index("ix_features_unpublished", "features", ["spec_hash", "minute"],
                    postgresql_where=sa.text("NOT published"))
    make_hypertable(op.get_bind(), "features", "minute")


def downgrade() -> None:
    op.drop_table("features")
