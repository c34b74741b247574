"""per-reader copies of a mailing, and privacy-first click and open counts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:50:00

A mailing's deliveries may carry a subset of its briefs: `deliveries.content_key` names the
frozen copy in `mailing_contents` (NULL: the mailing's own, whole content, as before this
revision, so existing deliveries keep meaning what they meant). `mailing_links` holds every
link a mailing's copies point to through `/r/`; `tracking_counts` counts what came of them
per day, people and filtered requests apart, and never names a reader.
"""

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailing_contents",
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("brief_ids", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailings.id"], name=op.f("fk_mailing_contents_mailing_id_mailings"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailing_id", "key", name=op.f("pk_mailing_contents")),
    )
    op.create_table(
        "mailing_links",
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("brief_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailings.id"], name=op.f("fk_mailing_links_mailing_id_mailings"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailing_id", "link_no", name=op.f("pk_mailing_links")),
    )
    op.create_table(
        "tracking_counts",
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailings.id"], name=op.f("fk_tracking_counts_mailing_id_mailings"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailing_id", "link_no", "day", "verdict", name=op.f("pk_tracking_counts")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("content_key")
    op.drop_table("tracking_counts")
    op.drop_table("mailing_links")
    op.drop_table("mailing_contents")
