"""Features carry the names of features computed without their inputs (``unavailable``); the
``feature_owners`` fence of the feature service's lease (the newest owner's token per universe).

Revision ID: feat0002
Revises: study0001
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "feat0002"
down_revision: str | None = "study0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("features", sa.Column("unavailable", postgresql.ARRAY(sa.Text()), server_default="{}",
                                        nullable=False))
    op.create_table(
        "feature_owners",
        sa.Column("universe", sa.Text(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("universe", name=op.f("pk_feature_owners")),
    )


def downgrade() -> None:
    op.drop_table("feature_owners")
    op.drop_column("features", "unavailable")
