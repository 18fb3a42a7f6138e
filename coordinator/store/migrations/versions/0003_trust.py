"""trust: replacement enrollment tokens, API token expiry

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:40:00

- enrollment_tokens.device_id: a token made by `convoy devices replace` re-enrolls exactly that
  device, once; ordinary tokens leave it NULL.
- api_tokens.expires_at (NULL = never) and api_tokens.created_by (the API token that made it).
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key('fk_enrollment_tokens_device_id', 'devices', ['device_id'], ['id'],
                                    ondelete='CASCADE')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', coordinator.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('created_by', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('created_by')
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_enrollment_tokens_device_id', type_='foreignkey')
        batch_op.drop_column('device_id')
