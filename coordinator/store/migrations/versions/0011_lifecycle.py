"""lifecycle: revoked devices and the global audit log

Revision ID: 0011_lifecycle
Revises: 0010_device_certs
Create Date: 2026-12-02 15:00:00

- devices.revoked_at / revoked_by: set by `convoy devices revoke`; the credential is refused
  from then on (a replacement token clears them).
- audit_log: one row per admin write, written in the write's own transaction (docs/security.md,
  "Audit log").
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0011_lifecycle'
down_revision = '0010_device_certs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('revoked_at', coordinator.store.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column('revoked_by', sa.String(length=36), nullable=True))
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('actor_name', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=36), nullable=True),
        sa.Column('target_id', sa.String(length=200), nullable=False),
        sa.Column('replica', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_log_client_id', 'audit_log', ['client_id', 'id'])
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])


def downgrade() -> None:
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_index('ix_audit_log_client_id', table_name='audit_log')
    op.drop_table('audit_log')
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('revoked_by')
        batch.drop_column('revoked_at')
