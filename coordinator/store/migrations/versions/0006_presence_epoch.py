"""presence epochs: which stream holds a device's presence

Revision ID: 0006_presence_epoch
Revises: 0005_replicas
Create Date: 2026-12-02 02:45:00

- devices.connection_id: the id of the stream whose hello was last written (any replica); a
  disconnect or a missed-heartbeat offline write only applies while the row still holds it.
- devices.connected_at: when that stream was accepted; an older hello never overwrites a newer.
Both NULL for a device that never connected since the upgrade (offline writes by id then apply
only through the stale sweep, which needs no connection id).
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0006_presence_epoch'
down_revision = '0005_replicas'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('connected_at', coordinator.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('connected_at')
        batch_op.drop_column('connection_id')
