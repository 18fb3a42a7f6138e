"""webhooks: a client's receivers of deployment events, and their delivery outbox

Revision ID: 0012_webhooks
Revises: 0011_lifecycle
Create Date: 2026-12-02 14:50:00

- webhooks: url, event filter (JSON list, empty = all), the secret encrypted with the
  coordinator's webhooks.key (Fernet) and that key's id.
- webhook_deliveries: the outbox, one row per event per webhook, written in the transaction of
  the deployment's move; ix_webhook_deliveries_due (status, next_attempt_at) is the worker's
  "what is due, and when is the next" query.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0012_webhooks'
down_revision = '0011_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhooks',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('secret_encrypted', sa.Text(), nullable=False),
        sa.Column('secret_key_id', sa.String(length=16), nullable=False),
        sa.Column('created_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_webhooks_client_id', 'webhooks', ['client_id'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('webhook_id', sa.String(length=36), nullable=False),
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('deployment_id', sa.String(length=36), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', coordinator.store.models.UTCDateTime(), nullable=True),
        sa.Column('lease_until', coordinator.store.models.UTCDateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('created_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('delivered_at', coordinator.store.models.UTCDateTime(), nullable=True),
        sa.Column('updated_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('webhook_id', 'event_id', name='uq_webhook_deliveries_hook_event'),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_hook_created', 'webhook_deliveries', ['webhook_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_hook_created', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhooks_client_id', table_name='webhooks')
    op.drop_table('webhooks')
