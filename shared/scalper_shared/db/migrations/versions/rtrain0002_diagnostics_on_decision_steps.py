"""training_diagnostics on decision steps: headline columns plus the whole record in ``details``.

The first diagnostics (argmax shares over every step, HOLD-only steps included) are replaced by the
definitions of ``docs/diagnostics.md``. Rows of the old definitions cannot be converted, so they
are dropped with their columns.

Revision ID: train0002
Revises: eval0001
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "train0002"
down_revision: str | None = "eval0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_COLUMNS = ("hold_pct", "buy_pct", "buy_call_pct", "buy_put_pct", "strong_setup_buy_rate", "trades_per_day",
               "mean_episode_pnl", "policy_entropy", "validation_steps")
NEW_DOUBLES = ("approx_kl", "hold_share", "buy_share", "entropy", "setup_buy_rate", "nonsetup_buy_rate",
               "trades_per_account_day", "pnl_per_account_day")


def upgrade() -> None:
    op.execute("DELETE FROM training_diagnostics")
    for name in OLD_COLUMNS:
        op.drop_column("training_diagnostics", name)
    op.add_column("training_diagnostics", sa.Column("updates", sa.Integer(), nullable=False))
    for name in NEW_DOUBLES:
        op.add_column("training_diagnostics", sa.Column(name, sa.Double(), nullable=True))
    op.add_column("training_diagnostics", sa.Column("not_learning_warning", sa.Boolean(),
                                                    server_default=sa.false(), nullable=False))
    op.add_column("training_diagnostics", sa.Column("details", postgresql.JSONB(), nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM training_diagnostics")
    for name in ("details", "not_learning_warning", *NEW_DOUBLES, "updates"):
        op.drop_column("training_diagnostics", name)
    for name in OLD_COLUMNS:
        kind: sa.types.TypeEngine[int] | sa.types.TypeEngine[float] = (
            sa.Integer() if name == "validation_steps" else sa.Double())
        op.add_column("training_diagnostics", sa.Column(name, kind, nullable=name == "strong_setup_buy_rate"))
