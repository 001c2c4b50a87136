"""Create the models registry and the training_diagnostics table.

Revision ID: train0001
Revises: exec0001
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "train0001"
down_revision: str | None = "exec0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("spec_hash", sa.Text(), nullable=False),
        sa.Column("train_from", sa.Date(), nullable=False),
        sa.Column("train_to", sa.Date(), nullable=False),
        sa.Column("validation_from", sa.Date(), nullable=False),
        sa.Column("validation_to", sa.Date(), nullable=False),
        sa.Column("total_timesteps", sa.Integer(), nullable=False),
        sa.Column("metrics", postgresql.JSONB(), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ready", nullable=False),
        sa.Column("promoted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint("status IN ('ready', 'retired')", name=op.f("ck_models_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("job_id", name=op.f("uq_models_job_id")),
    )
    op.create_index("uq_models_one_promoted", "models", ["promoted"], unique=True,
                    postgresql_where=sa.text("promoted"))
    op.create_table(
        "training_diagnostics",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("hold_pct", sa.Double(), nullable=False),
        sa.Column("buy_pct", sa.Double(), nullable=False),
        sa.Column("buy_call_pct", sa.Double(), nullable=False),
        sa.Column("buy_put_pct", sa.Double(), nullable=False),
        sa.Column("strong_setup_buy_rate", sa.Double(), nullable=True),
        sa.Column("trades_per_day", sa.Double(), nullable=False),
        sa.Column("mean_episode_pnl", sa.Double(), nullable=False),
        sa.Column("policy_entropy", sa.Double(), nullable=False),
        sa.Column("validation_steps", sa.Integer(), nullable=False),
        sa.Column("collapse_warning", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "step", name=op.f("pk_training_diagnostics")),
    )


def downgrade() -> None:
    op.drop_table("training_diagnostics")
    op.drop_index("uq_models_one_promoted", table_name="models")
    op.drop_table("models")
