"""CHECK constraints on delivery states and mailing statuses

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:50:00

The values are written out here, not imported from `newsletter.states`, so this revision
keeps meaning what it meant when a later one changes the set.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DELIVERY_STATES = ("pending", "sending", "sent", "failed", "suppressed", "skipped")
MAILING_STATUSES = ("sending", "paused", "done", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    # Batch mode: SQLite cannot add a constraint to a table, so the table is rebuilt with it
    # (PostgreSQL just adds it). env.py turns SQLite's foreign keys off meanwhile, so rebuilding
    # `mailings` does not cascade into its deliveries.
    with op.batch_alter_table("mailings") as batch:
        batch.create_check_constraint("ck_mailings_status", _in("status", MAILING_STATUSES))
    with op.batch_alter_table("deliveries") as batch:
        batch.create_check_constraint("ck_deliveries_state", _in("state", DELIVERY_STATES))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_state", type_="check")
    with op.batch_alter_table("mailings") as batch:
        batch.drop_constraint("ck_mailings_status", type_="check")
