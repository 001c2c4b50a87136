"""Create the evaluations table (offline evaluations of models: status, metrics, report directory).

Revision ID: eval0001
Revises: ingest0001
Create Date: 2025-01-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "eval0001"
down_revision: str | None = "ingest0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("progress", sa.Double(), server_default="0", nullable=False),
        sa.Column("stage", sa.Text(), server_default="", nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("metrics", postgresql.JSONB(), nullable=True),
        sa.Column("report_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('queued', 'running', 'finished', 'failed')",
                           name=op.f("ck_evaluations_status_known")),
        sa.CheckConstraint("progress BETWEEN 0 AND 1", name=op.f("ck_evaluations_progress_fraction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    op.create_index(op.f("ix_evaluations_model_id"), "evaluations", ["model_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_evaluations_model_id"), table_name="evaluations")
    op.drop_table("evaluations")
