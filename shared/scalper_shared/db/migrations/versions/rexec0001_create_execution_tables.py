"""Create the execution service's tables: orders, fills, trades, daily_pnl, risk_events, risk_state,
and the paper broker's paper_orders and paper_fills.

Revision ID: exec0001
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "exec0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.Text(), nullable=True),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("option_symbol", sa.Text(), nullable=False),
        sa.Column("option_right", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("filled_contracts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("avg_fill_price", sa.Double(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision_id", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('submitted', 'accepted', 'partially_filled', 'filled', 'canceled', "
                           "'rejected')", name=op.f("ck_orders_status_known")),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side_known")),
        sa.CheckConstraint("contracts > 0 AND filled_contracts BETWEEN 0 AND contracts",
                           name=op.f("ck_orders_contracts_valid")),
        sa.PrimaryKeyConstraint("client_order_id", name=op.f("pk_orders")),
    )
    op.create_index(op.f("ix_orders_trade_id"), "orders", ["trade_id"])
    op.create_index(op.f("ix_orders_status"), "orders", ["status"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("commission", sa.Double(), nullable=False),
        sa.Column("filled_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["client_order_id"], ["orders.client_order_id"],
                                name=op.f("fk_fills_client_order_id_orders")),
        sa.PrimaryKeyConstraint("fill_id", name=op.f("pk_fills")),
    )
    op.create_index(op.f("ix_fills_client_order_id"), "fills", ["client_order_id"])
    op.create_table(
        "trades",
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("option_symbol", sa.Text(), nullable=False),
        sa.Column("option_right", sa.Text(), nullable=False),
        sa.Column("contracts_open", sa.Integer(), nullable=False),
        sa.Column("contracts_bought", sa.Integer(), nullable=False),
        sa.Column("avg_premium", sa.Double(), nullable=False),
        sa.Column("mark_bid", sa.Double(), nullable=False),
        sa.Column("tiers_hit", sa.Integer(), nullable=False),
        sa.Column("realised_pnl", sa.Double(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("exit_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("trade_id", name=op.f("pk_trades")),
    )
    op.create_table(
        "daily_pnl",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("realised_pnl", sa.Double(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_daily_pnl")),
    )
    op.create_table(
        "risk_events",
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("event_key", name=op.f("pk_risk_events")),
    )
    op.create_index(op.f("ix_risk_events_at"), "risk_events", ["at"])
    op.create_table(
        "risk_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trading_state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_state")),
    )
    op.create_table(
        "paper_orders",
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.Text(), nullable=False),
        sa.Column("option_symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("fill_price", sa.Double(), nullable=False),
        sa.Column("quote_as_of", TS, nullable=False),
        sa.Column("accepted_at", TS, nullable=False),
        sa.Column("fill_due_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("client_order_id", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint("broker_order_id", name=op.f("uq_paper_orders_broker_order_id")),
    )
    op.create_table(
        "paper_fills",
        sa.Column("fill_id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("commission", sa.Double(), nullable=False),
        sa.Column("filled_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["client_order_id"], ["paper_orders.client_order_id"],
                                name=op.f("fk_paper_fills_client_order_id_paper_orders")),
        sa.PrimaryKeyConstraint("fill_id", name=op.f("pk_paper_fills")),
    )
    op.create_index(op.f("ix_paper_fills_client_order_id"), "paper_fills", ["client_order_id"])


def downgrade() -> None:
    for table in ("paper_fills", "paper_orders", "risk_state", "risk_events", "daily_pnl", "trades", "fills",
                  "orders"):
        op.drop_table(table)
