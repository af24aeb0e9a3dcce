"""vault keys: the phone lookup key, kept apart from the rotating secret

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vault_keys",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("key_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_vault_keys")),
    )


def downgrade() -> None:
    op.drop_table("vault_keys")
