"""presence replica: which replica holds a device's stream, for a one-statement heartbeat

Revision ID: 0013_presence_replica
Revises: 0012_webhooks
Create Date: 2026-12-02 15:00:00

- devices.replica_id: the replica whose hello was last written for the device (set with
  connection_id, cleared with it by the disconnect of that stream). Indexed: every heartbeat tick
  is one `UPDATE devices … WHERE replica_id = :me AND connected_at >= :hub_started_at` instead of
  an IN-list of every connected device (docs/coordinator.md, "Presence").
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_presence_replica'
down_revision = '0012_webhooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replica_id', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_devices_replica_id', ['replica_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_replica_id')
        batch_op.drop_column('replica_id')
