"""network poles: pole cache with adjacency, box pole and drop splitters, project max drop

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('network_pole',
    sa.Column('ozmap_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('ozmap_project_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('latitude', sa.Double(), nullable=False),
    sa.Column('longitude', sa.Double(), nullable=False),
    sa.Column('usable', sa.Boolean(), nullable=False),
    sa.Column('adjacents', sa.Text(), nullable=False),
    sa.Column('ozmap_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ozmap_id', name=op.f('pk_network_pole'))
    )
    with op.batch_alter_table('network_pole', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_pole_ozmap_project_id'), ['ozmap_project_id'], unique=False)

    with op.batch_alter_table('network_box', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drop_splitters', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('pole_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    # Boxes cached before: their customer-facing splitters are in network_splitter already.
    op.execute(
        "UPDATE network_box SET drop_splitters = (SELECT count(*) FROM network_splitter "
        "WHERE network_splitter.box_id = network_box.ozmap_id)"
    )
    with op.batch_alter_table('network_box', schema=None) as batch_op:
        batch_op.alter_column('drop_splitters', server_default=None)

    with op.batch_alter_table('network_refresh_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poles', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('drop_max_m', sa.Double(), nullable=True))
    with op.batch_alter_table('network_refresh_state', schema=None) as batch_op:
        batch_op.alter_column('poles', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('network_refresh_state', schema=None) as batch_op:
        batch_op.drop_column('drop_max_m')
        batch_op.drop_column('poles')
    with op.batch_alter_table('network_box', schema=None) as batch_op:
        batch_op.drop_column('pole_id')
        batch_op.drop_column('drop_splitters')
    with op.batch_alter_table('network_pole', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_pole_ozmap_project_id'))
    op.drop_table('network_pole')
