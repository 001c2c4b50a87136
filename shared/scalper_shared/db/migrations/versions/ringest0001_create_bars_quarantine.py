"""Create the bars_quarantine table (bars that failed validation, with the reason).

Revision ID: ingest0001
Revises: feat0001
Create Date: 2025-01-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest0001"
down_revision: str | None = "feat0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bars_quarantine",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(collation="C"), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("close", sa.Double(), nullable=True),
        sa.Column("volume", sa.Double(), nullable=True),
        sa.Column("vwap", sa.Double(), nullable=True),
        sa.Column("trade_count", sa.Integer(), nullable=True),
        sa.Column("session", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_bars_quarantine")),
    )
    op.create_index("ix_bars_quarantine_symbol_start", "bars_quarantine", ["symbol", "start"])
    op.create_index(op.f("ix_bars_quarantine_reason"), "bars_quarantine", ["reason"])


def downgrade() -> None:
    op.drop_table("bars_quarantine")
