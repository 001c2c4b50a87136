"""Create the option_bars table (real option minute aggregates; a hypertable on ``start`` when
TimescaleDB is available).

Revision ID: opt0001
Revises: sec0001
Create Date: 2026-12-05 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from scalper_shared.db.timescale import make_hypertable

revision: str = "opt0001"
down_revision: str | None = "sec0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "option_bars",
        sa.Column("ticker", sa.Text(collation="C"), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("underlying", sa.Text(collation="C"), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=False),
        sa.Column("option_right", sa.Text(), nullable=False),
        sa.Column("strike", sa.Double(), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=True),
        sa.Column("vwap", sa.Double(), nullable=True),
        sa.Column("trade_count", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("high >= low", name=op.f("ck_option_bars_high_not_below_low")),
        sa.CheckConstraint("open BETWEEN low AND high AND close BETWEEN low AND high",
                           name=op.f("ck_option_bars_open_close_in_range")),
        sa.CheckConstraint("volume >= 0", name=op.f("ck_option_bars_volume_not_negative")),
        sa.CheckConstraint("option_right IN ('call', 'put')", name=op.f("ck_option_bars_right_known")),
        sa.CheckConstraint("strike > 0", name=op.f("ck_option_bars_strike_positive")),
        sa.PrimaryKeyConstraint("ticker", "start", name=op.f("pk_option_bars")),
    )
    op.create_index("ix_option_bars_underlying_start", "option_bars", ["underlying", "start"])
    make_hypertable(op.get_bind(), "option_bars", "start")


def downgrade() -> None:
    op.drop_table("option_bars")
