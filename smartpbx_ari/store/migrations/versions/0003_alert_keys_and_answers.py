"""alert keys (the live alert's id) and operators' typed answers; audit by alert key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hitl_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.Text(), nullable=True))
    op.execute("UPDATE hitl_alerts SET key = 'legacy-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("hitl_alerts", schema=None) as batch_op:
        batch_op.alter_column("key", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint("uq_hitl_alerts_key", ["key"])
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_key", sa.String(length=32), nullable=True))
        batch_op.drop_column("alert_id")


def downgrade() -> None:
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_id", sa.Integer(), nullable=True))
        batch_op.drop_column("alert_key")
    with op.batch_alter_table("hitl_alerts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_hitl_alerts_key", type_="unique")
        batch_op.drop_column("answer")
        batch_op.drop_column("key")
