"""reservation expiry: TTL and warning settings; expiry, extensions and warning on reservations

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reservation_ttl_hours', sa.Integer(), server_default='48', nullable=False))
        batch_op.add_column(sa.Column('expiry_warning_hours', sa.Integer(), server_default='12', nullable=False))

    with op.batch_alter_table('port_reservation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('extensions', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('expiry_warned_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_port_reservation_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('port_reservation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_port_reservation_expires_at'))
        batch_op.drop_column('expiry_warned_at')
        batch_op.drop_column('extensions')
        batch_op.drop_column('expires_at')

    with op.batch_alter_table('integration_settings', schema=None) as batch_op:
        batch_op.drop_column('expiry_warning_hours')
        batch_op.drop_column('reservation_ttl_hours')
