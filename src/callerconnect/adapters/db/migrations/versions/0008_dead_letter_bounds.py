"""dead letters: the length and SHA-256 of a payload kept only in part

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Letters stored before this revision were kept whole: no length or hash recorded.
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("payload_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payload_truncated", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("payload_truncated")
        batch_op.drop_column("payload_sha256")
        batch_op.drop_column("payload_bytes")
