"""protected phones: numbers seen on calls that put someone at risk

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "protected_phones",
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("protected_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone_hash", name=op.f("pk_protected_phones")),
    )
    with op.batch_alter_table("protected_phones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protected_phones_protected_until"), ["protected_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("protected_phones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protected_phones_protected_until"))
    op.drop_table("protected_phones")
