"""deliveries without foreign keys: a million-reader mailing is written in seconds

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:20:00

PostgreSQL checks a foreign key with a trigger per inserted row (a lookup and a row lock on the
parent): for a 1,000,000-reader mailing, 16 s of the creation's 36 s went into checking that
the one mailing and each subscriber exist, which the INSERT ... SELECT that writes them already
guarantees. What the keys did on delete is done by the code: mailings are never deleted, and
`registry.erase` clears the subscriber id of the deliveries it anonymises. Ids are never reused
(AUTOINCREMENT, sequences), so a stale subscriber id can never name someone else.
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table without them (env.py turns its foreign keys off
    # meanwhile, so bounce_reports keeps pointing at its deliveries).
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("fk_deliveries_mailing_id_mailings", type_="foreignkey")
        batch.drop_constraint("fk_deliveries_subscriber_id_subscribers", type_="foreignkey")


def downgrade() -> None:
    # Deliveries of subscribers erased meanwhile already have no subscriber id; any other
    # stale one would stop the key from being added, so it is cleared first.
    op.execute(sa.text("UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id NOT IN "
                       "(SELECT id FROM subscribers)"))
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key("fk_deliveries_mailing_id_mailings", "mailings", ["mailing_id"], ["id"],
                                 ondelete="CASCADE")
        batch.create_foreign_key("fk_deliveries_subscriber_id_subscribers", "subscribers", ["subscriber_id"],
                                 ["id"], ondelete="SET NULL")
