"""device_certs: each device's key and the certificate the coordinator signed for it

Revision ID: 0010_device_certs
Revises: 0009_signing
Create Date: 2026-12-02 15:00:00

- devices.public_key: the device key's SubjectPublicKeyInfo (PEM) from its enrollment request;
  a reinstall must prove possession of it. NULL: a bearer-only device (compatibility mode).
- devices.cert_sha256: `sha256:<hex>` of the DER of the certificate last issued to it; agent
  calls must present exactly that certificate (mutual TLS), so an older one stops working.
- devices.cert_expires_at: that certificate's notAfter.
"""
import sqlalchemy as sa
from alembic import op

import coordinator.store.models

revision = '0010_device_certs'
down_revision = '0009_signing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('public_key', sa.Text(), nullable=True))
        batch.add_column(sa.Column('cert_sha256', sa.String(length=71), nullable=True))
        batch.add_column(sa.Column('cert_expires_at', coordinator.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('cert_expires_at')
        batch.drop_column('cert_sha256')
        batch.drop_column('public_key')
