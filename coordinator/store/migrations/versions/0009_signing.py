"""signing: operators' signer keys, signed deployments, signed trust-set documents

Revision ID: 0009_signing
Revises: 0008_plan
Create Date: 2026-12-02 03:30:00

- signers: a client's registered Ed25519 public keys (key id = first 16 bytes of the SHA-256
  of the raw key, hex); revoked_at set by a revoke.
- deployments.signature: the `{"keyId", "value", "manifest"}` an operator gave on start.
- trust_sets: the newest signed trust-set document per client (forwarded to agents on connect).
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0009_signing'
down_revision = '0008_plan'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'signers',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('public_key', sa.String(length=80), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('created_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=36), nullable=True),
        sa.Column('revoked_at', coordinator.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('client_id', 'key_id', name='uq_signers_client_key'),
    )
    op.create_index('ix_signers_client_id', 'signers', ['client_id'])
    op.create_table(
        'trust_sets',
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('signature', sa.String(length=200), nullable=False),
        sa.Column('serial', sa.BigInteger(), nullable=False),
        sa.Column('published_at', coordinator.store.models.UTCDateTime(), nullable=False),
        sa.Column('published_by', sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id'),
    )
    with op.batch_alter_table('deployments') as batch:
        batch.add_column(sa.Column('signature', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deployments') as batch:
        batch.drop_column('signature')
    op.drop_table('trust_sets')
    op.drop_index('ix_signers_client_id', table_name='signers')
    op.drop_table('signers')
