"""replacement tokens: enrollment_tokens.device_id

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 21:40:00

An enrollment token with a device_id (made by `convoy devices replace`) re-enrolls exactly that
device, once; ordinary tokens leave it NULL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key('fk_enrollment_tokens_device_id', 'devices', ['device_id'], ['id'],
                                    ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_enrollment_tokens_device_id', type_='foreignkey')
        batch_op.drop_column('device_id')
