"""sms providers: message parts, early receipts, inbound texts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:33:02.083423
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_pending_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_retryable", sa.Boolean(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_pending_receipts")),
    )
    with op.batch_alter_table("sms_pending_receipts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_pending_receipts_provider_message", ["provider", "message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sms_pending_receipts_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("phone_masked", sa.String(length=32), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("body_encrypted", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flag_terms", sa.String(length=200), nullable=True),
        sa.Column("reply_outbox_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["reply_outbox_id"],
            ["outbox.id"],
            name=op.f("fk_inbound_messages_reply_outbox_id_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "provider", "provider_message_id", name="uq_inbound_messages_provider_message"
        ),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_messages_flagged", ["flagged", "reviewed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_messages_phone_hash"), ["phone_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_messages_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "sms_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_retryable", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_sms_parts_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_parts")),
    )
    with op.batch_alter_table("sms_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_parts_outbox_id"), ["outbox_id"], unique=False)
        batch_op.create_index(
            "ix_sms_parts_provider_message", ["provider", "message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_parts", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_parts_provider_message")
        batch_op.drop_index(batch_op.f("ix_sms_parts_outbox_id"))

    op.drop_table("sms_parts")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_messages_received_at"))
        batch_op.drop_index(batch_op.f("ix_inbound_messages_phone_hash"))
        batch_op.drop_index("ix_inbound_messages_flagged")

    op.drop_table("inbound_messages")
    with op.batch_alter_table("sms_pending_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_pending_receipts_received_at"))
        batch_op.drop_index("ix_sms_pending_receipts_provider_message")

    op.drop_table("sms_pending_receipts")
