"""bounce mailbox: what each fetched bounce, complaint or auto-reply said, applied once

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30 06:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identity", sa.String(length=300), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailings.id"],
                                name=op.f("fk_bounce_reports_mailing_id_mailings"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"],
                                name=op.f("fk_bounce_reports_delivery_id_deliveries"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_reports")),
        sa.UniqueConstraint("identity", "email", name="uq_bounce_reports_identity_email"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_bounce_reports_mailing_id", "bounce_reports", ["mailing_id"])


def downgrade() -> None:
    op.drop_index("ix_bounce_reports_mailing_id", table_name="bounce_reports")
    op.drop_table("bounce_reports")
