"""opt-outs per agency: a STOP is the caller's wish about the number it was sent to

Opt-outs recorded before agencies were told apart are kept for every agency (agency
``*``): nobody who said STOP starts getting texts again because of an upgrade.

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-06 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_AGENCY = "*"


def upgrade() -> None:
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_id", sa.String(length=64), nullable=True))
    op.execute(sa.text("UPDATE opt_outs SET agency_id = :every").bindparams(every=EVERY_AGENCY))
    with op.batch_alter_table("opt_outs", schema=None, recreate="always") as batch_op:
        batch_op.alter_column("agency_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("pk_opt_outs", type_="primary")
        batch_op.create_primary_key("pk_opt_outs", ["agency_id", "phone_hash"])


def downgrade() -> None:
    # One row a phone again: opted out if it is opted out from any agency (fails closed).
    op.execute(
        sa.text(
            "DELETE FROM opt_outs WHERE EXISTS (SELECT 1 FROM opt_outs AS other "
            "WHERE other.phone_hash = opt_outs.phone_hash AND ("
            "(other.opted_out AND NOT opt_outs.opted_out) OR "
            "(other.opted_out = opt_outs.opted_out AND other.agency_id < opt_outs.agency_id)))"
        )
    )
    with op.batch_alter_table("opt_outs", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint("pk_opt_outs", type_="primary")
        batch_op.create_primary_key("pk_opt_outs", ["phone_hash"])
        batch_op.drop_column("agency_id")
