"""replicas: every deployment's next due time is stored

Revision ID: 0005_replicas
Revises: 0004_approvals
Create Date: 2026-12-02 02:50:00

- deployments.due_at: when the engine must look at the deployment next (a batch delay ending, a
  retry backoff ending, an install deadline), written by every reconcile and set to "now" by every
  change that needs one. Any replica's engine finds due deployments with one index range
  (ix_deployments_due_at) and claims them with a row lock, so no due time lives only in the memory
  of the process that computed it. NULL: nothing is due. Existing live deployments are looked at
  by the first engine that starts (it reconciles every live deployment), which fills it in.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0005_replicas'
down_revision = '0004_approvals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deployments') as b:
        b.add_column(sa.Column('due_at', coordinator.store.models.UTCDateTime(), nullable=True))
    op.create_index('ix_deployments_due_at', 'deployments', ['due_at'])


def downgrade() -> None:
    op.drop_index('ix_deployments_due_at', table_name='deployments')
    with op.batch_alter_table('deployments') as b:
        b.drop_column('due_at')
