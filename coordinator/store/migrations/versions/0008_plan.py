"""rollout strategies, part 1: success gates, automatic rollback, the dispatch rate cap

Revision ID: 0008_plan
Revises: 0007_devstrat
Create Date: 2026-12-02 02:50:00

- deployments.gate_passed_batch: the batch whose success gate an operator passed by resuming
  after it was done (0: none).
- deployments.rollback_job_payload: the revert payload frozen at initialize for
  `onFailureThreshold: "rollback"`, so the engine can start the rollback by itself.
- ix_jobs_deployment_created: the jobs a deployment dispatched in the last minute
  (`maxPerMinute`) are one index range.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_plan'
down_revision = '0007_devstrat'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deployments') as b:
        b.add_column(sa.Column('gate_passed_batch', sa.Integer(), nullable=False, server_default='0'))
        b.add_column(sa.Column('rollback_job_payload', sa.JSON(), nullable=True))
    op.create_index('ix_jobs_deployment_created', 'jobs', ['deployment_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_jobs_deployment_created', table_name='jobs')
    with op.batch_alter_table('deployments') as b:
        b.drop_column('rollback_job_payload')
        b.drop_column('gate_passed_batch')
