"""deliveries keyed by (mailing, subscriber) instead of (mailing, address); claims in id order

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-30 12:10:00

A mailing's deliveries are written in subscriber-id order, so an index on (mailing_id,
subscriber_id) grows at its right edge, page after page; the one on (mailing_id, email) took
each of a million rows at a random place in a tree of long keys. For a 200,000-reader mailing
the insert went from 1.97 s to 1.38 s on PostgreSQL (WAL 77 MB to 69 MB) and from 0.64-0.84 s
to 0.37-0.45 s on SQLite. One delivery per address still holds: subscribers' addresses are
unique, and a mailing's deliveries are written in one statement from one reading of them. The
new key also serves what looked a delivery up by its subscriber (a reader's copy, a bounce
matched by its Message-ID), which had no index of its own.

A claim takes a mailing's first due deliveries in id order. With an index on (mailing_id,
state) alone, PostgreSQL either sorted every pending row of the mailing or walked the primary
key past every delivery sent before (every earlier mailing's, and this one's): 328 ms a claim
60% of the way through a 1,000,000-reader mailing. With `id` in the index the claim reads its
batch straight off the index; on PostgreSQL writing it costs the insert no measurable time (the
entries come in id order), and on SQLite it holds what the old one did (the rowid was in it).
"""

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table (a constraint cannot be dropped in place there).
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_mailing_email", type_="unique")
        batch.create_unique_constraint("uq_deliveries_mailing_subscriber", ["mailing_id", "subscriber_id"])
        batch.drop_index("ix_deliveries_mailing_state")
        batch.create_index("ix_deliveries_mailing_state_id", ["mailing_id", "state", "id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_mailing_state_id")
        batch.create_index("ix_deliveries_mailing_state", ["mailing_id", "state"])
        batch.drop_constraint("uq_deliveries_mailing_subscriber", type_="unique")
        batch.create_unique_constraint("uq_deliveries_mailing_email", ["mailing_id", "email"])
