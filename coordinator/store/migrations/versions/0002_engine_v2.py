"""engine v2: desired state per job, silence deadlines, incremental counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:40:00

- jobs.desired ("run" | "withdrawn") and jobs.withdraw_reason: what the agent should be doing is
  stored, and re-sent as a difference whenever the device connects.
- jobs.activity_at: the last time the device said anything about this job (silence deadlines).
- jobs.ran: whether this attempt actually ran (a skipped or never-delivered job did not).
- deployment_devices.runs: attempts that ran; retries used are runs - 1.
- deployment_devices.manual: an operator's retry, dispatched even while the deployment is paused.
- deployments.n_installing and deployments.batch_sizes: counters kept incrementally, so a
  reconcile that changes nothing counts no records.
- ix_deployment_devices_dep_due: the next due time of a deployment is one index lookup.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as b:
        b.add_column(sa.Column('desired', sa.String(length=16), nullable=False, server_default='run'))
        b.add_column(sa.Column('withdraw_reason', sa.Text(), nullable=False, server_default=''))
        b.add_column(sa.Column('activity_at', coordinator.store.models.UTCDateTime(), nullable=True))
        b.add_column(sa.Column('ran', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('deployment_devices') as b:
        b.add_column(sa.Column('runs', sa.Integer(), nullable=False, server_default='0'))
        b.add_column(sa.Column('manual', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('deployments') as b:
        b.add_column(sa.Column('n_installing', sa.Integer(), nullable=False, server_default='0'))
        b.add_column(sa.Column('batch_sizes', sa.JSON(), nullable=True))
    op.create_index('ix_deployment_devices_dep_due', 'deployment_devices', ['deployment_id', 'due_at'])
    # Existing data: attempts that got past "received" ran; counters and batch sizes from records.
    op.execute("UPDATE jobs SET activity_at = updated_at")
    op.execute("UPDATE jobs SET ran = true WHERE state IN ('downloading', 'installing', 'completed', 'failed')")
    op.execute("UPDATE deployment_devices SET runs = (SELECT count(*) FROM jobs "
               "WHERE jobs.deployment_device_id = deployment_devices.id AND jobs.ran = true)")
    op.execute("UPDATE deployments SET n_installing = (SELECT count(*) FROM deployment_devices r "
               "WHERE r.deployment_id = deployments.id AND r.status = 'installing')")
    conn = op.get_bind()
    sizes: dict[str, dict[int, int]] = {}
    for dep, batch, count in conn.execute(sa.text(
            "SELECT deployment_id, batch_number, count(*) FROM deployment_devices GROUP BY deployment_id, batch_number")):
        sizes.setdefault(dep, {})[int(batch)] = int(count)
    table = sa.table('deployments', sa.column('id', sa.String), sa.column('batch_sizes', sa.JSON))
    for dep, per_batch in sizes.items():
        conn.execute(table.update().where(table.c.id == dep)
                     .values(batch_sizes=[per_batch.get(i, 0) for i in range(1, max(per_batch) + 1)]))


def downgrade() -> None:
    op.drop_index('ix_deployment_devices_dep_due', table_name='deployment_devices')
    with op.batch_alter_table('deployments') as b:
        b.drop_column('batch_sizes')
        b.drop_column('n_installing')
    with op.batch_alter_table('deployment_devices') as b:
        b.drop_column('manual')
        b.drop_column('runs')
    with op.batch_alter_table('jobs') as b:
        b.drop_column('ran')
        b.drop_column('activity_at')
        b.drop_column('withdraw_reason')
        b.drop_column('desired')
