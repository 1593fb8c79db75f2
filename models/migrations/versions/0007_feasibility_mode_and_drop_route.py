"""feasibility mode per unit; the drop route (length and poles) kept on reservations

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feasibility_mode', sa.String(length=8), server_default='radius', nullable=False))

    with op.batch_alter_table('port_reservation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route_m', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('drop_poles', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('port_reservation', schema=None) as batch_op:
        batch_op.drop_column('drop_poles')
        batch_op.drop_column('route_m')

    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('feasibility_mode')
