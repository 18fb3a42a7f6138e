"""approvals: per-client approval policy and deployment approvals

Revision ID: 0004_approvals
Revises: 0003
Create Date: 2026-12-02 02:50:00

- client_policies: one row per client with an approval policy (require_approval_over: more
  than N targets need approval, NULL = no count rule; require_approval_for_all: every
  `targetType: all` deployment does).
- deployment_approvals: who approved a deployment (API token id), when, with what comment;
  one row per approving token.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0004_approvals'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'client_policies',
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('require_approval_over', sa.Integer(), nullable=True),
        sa.Column('require_approval_for_all', sa.Boolean(), nullable=False),
        sa.Column('updated_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id'),
    )
    op.create_table(
        'deployment_approvals',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('deployment_id', sa.String(length=36), nullable=False),
        sa.Column('token_id', sa.String(length=36), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('deployment_id', 'token_id', name='uq_deployment_approvals_dep_token'),
    )
    op.create_index('ix_deployment_approvals_deployment_id', 'deployment_approvals', ['deployment_id'])


def downgrade() -> None:
    op.drop_index('ix_deployment_approvals_deployment_id', table_name='deployment_approvals')
    op.drop_table('deployment_approvals')
    op.drop_table('client_policies')
