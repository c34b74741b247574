"""subscriber security: applied webhook events, bound subscribe requests, data links, rate hits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_events',
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_key', sa.String(length=255), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'event_key', name=op.f('pk_webhook_events'))
    )
    op.create_table('subscribe_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('editions', sa.JSON(), nullable=False),
    sa.Column('countries', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('form_version', sa.String(length=64), nullable=True),
    sa.Column('page_language', sa.String(length=8), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribe_requests')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_subscribe_requests_email', 'subscribe_requests', ['email'])
    op.create_index('ix_subscribe_requests_state', 'subscribe_requests', ['state'])
    op.create_index('ix_subscribe_requests_expires', 'subscribe_requests', ['expires_at'])
    op.create_table('data_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                            name=op.f('fk_data_links_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_links')),
    sqlite_autoincrement=True
    )
    op.create_table('rate_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('bucket', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_hits'))
    )
    op.create_index('ix_rate_hits_bucket_subject_at', 'rate_hits', ['bucket', 'subject', 'at'])
    # Pending subscribers made by the old form carried their request in a consent record that any
    # later request overwrote; their links (token purpose `confirm`) no longer open anything, so
    # the unconfirmed requests are dropped and the person subscribes again.
    consents = sa.table('consents', sa.column('action', sa.String), sa.column('confirmed_at', sa.DateTime))
    op.execute(sa.delete(consents).where(consents.c.action == 'subscribe', consents.c.confirmed_at.is_(None)))


def downgrade() -> None:
    op.drop_index('ix_rate_hits_bucket_subject_at', table_name='rate_hits')
    op.drop_table('rate_hits')
    op.drop_table('data_links')
    op.drop_index('ix_subscribe_requests_expires', table_name='subscribe_requests')
    op.drop_index('ix_subscribe_requests_state', table_name='subscribe_requests')
    op.drop_index('ix_subscribe_requests_email', table_name='subscribe_requests')
    op.drop_table('subscribe_requests')
    op.drop_table('webhook_events')
