"""calls: the disposition (how the call ended), its reason, the time held for an answer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("disposition_reason", sa.String(length=64),
                                      nullable=False, server_default=""))
        batch_op.add_column(sa.Column("hold_s", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_calls_disposition"), ["disposition"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_disposition"))
        batch_op.drop_column("hold_s")
        batch_op.drop_column("disposition_reason")
        batch_op.drop_column("disposition")
