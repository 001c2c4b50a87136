"""Create the bars table (a hypertable on ``start`` when TimescaleDB is available).

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from scalper_shared.db.timescale import make_hypertable

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("symbol", sa.Text(collation="C"), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=True),
        sa.Column("vwap", sa.Double(), nullable=True),
        sa.Column("trade_count", sa.Integer(), nullable=True),
        sa.Column("session", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("high >= low", name=op.f("ck_bars_high_not_below_low")),
        sa.CheckConstraint("open BETWEEN low AND high AND close BETWEEN low AND high",
                           name=op.f("ck_bars_open_close_in_range")),
        sa.CheckConstraint("volume >= 0", name=op.f("ck_bars_volume_not_negative")),
        sa.CheckConstraint("trade_count >= 0", name=op.f("ck_bars_trade_count_not_negative")),
        sa.CheckConstraint("session IN ('pre', 'regular', 'post')", name=op.f("ck_bars_session_known")),
        sa.PrimaryKeyConstraint("symbol", "start", name=op.f("pk_bars")),
    )
    make_hypertable(op.get_bind(), "bars", "start")


def downgrade() -> None:
    op.drop_table("bars")
