"""devstrat: late arrivers and jobs held for a maintenance window

Revision ID: 0007_devstrat
Revises: 0006_presence_epoch
Create Date: 2026-12-02 03:00:00

- deployment_devices.wait_until (NULL = not waiting): rolloutConfig.offlineDevices "wait", a
  record whose device was offline at dispatch waits for it to connect until then; indexed with
  device_id (a device's connect looks its waiting records up) and with deployment_id (the
  engine counts a deployment's waiting records without reading its other pending ones).
- jobs.hold_until (NULL = not held): rolloutConfig.windowPolicy "wait", the agent holds the job
  until the device's window opens then; the silence deadline counts from no earlier.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0007_devstrat'
down_revision = '0006_presence_epoch'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deployment_devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wait_until', coordinator.store.models.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_deployment_devices_device_wait', ['device_id', 'wait_until'], unique=False)
        batch_op.create_index('ix_deployment_devices_dep_wait', ['deployment_id', 'wait_until'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_until', coordinator.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
    with op.batch_alter_table('deployment_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_deployment_devices_dep_wait')
        batch_op.drop_index('ix_deployment_devices_device_wait')
        batch_op.drop_column('wait_until')
