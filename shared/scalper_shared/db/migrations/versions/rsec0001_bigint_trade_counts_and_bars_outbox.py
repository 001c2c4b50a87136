"""Trade counts as BIGINT (a count over 2**31 was refused or wrapped) and the bars outbox (stored bars
not yet confirmed on md.bars).

Revision ID: sec0001
Revises: train0002
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sec0001"
down_revision: str | None = "train0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("bars", "trade_count", type_=sa.BigInteger(), existing_type=sa.Integer())
    op.alter_column("bars_quarantine", "trade_count", type_=sa.BigInteger(), existing_type=sa.Integer())
    op.create_table(
        "bars_outbox",
        sa.Column("symbol", sa.Text(collation="C"), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope_id", sa.Text(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "start", name=op.f("pk_bars_outbox")),
    )


def downgrade() -> None:
    op.drop_table("bars_outbox")
    op.alter_column("bars_quarantine", "trade_count", type_=sa.Integer(), existing_type=sa.BigInteger())
    op.alter_column("bars", "trade_count", type_=sa.Integer(), existing_type=sa.BigInteger())
