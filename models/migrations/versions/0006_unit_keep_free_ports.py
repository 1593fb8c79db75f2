"""unit.keep_free_ports: ports each box of the unit keeps free

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('unit') as batch:
        batch.add_column(
            sa.Column('keep_free_ports', sa.Integer(), server_default='0', nullable=False)
        )
        batch.create_check_constraint(
            op.f('ck_unit_keep_free_ports_range'),
            'keep_free_ports >= 0 AND keep_free_ports <= 64',
        )


def downgrade() -> None:
    with op.batch_alter_table('unit') as batch:
        batch.drop_constraint(op.f('ck_unit_keep_free_ports_range'), type_='check')
        batch.drop_column('keep_free_ports')
