"""knowledge: a short spoken title, and alternates generated at import

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("generated", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("knowledge", schema=None) as batch_op:
        batch_op.drop_column("generated")
        batch_op.drop_column("title")
