"""reconciliation scan parts: what the child runs of a fanned-out reconciliation scanned

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reconciliation_scan_part',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('project', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('splitters', sa.Integer(), nullable=False),
    sa.Column('ports', sa.Integer(), nullable=False),
    sa.Column('properties', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_run.id'], name=op.f('fk_reconciliation_scan_part_run_id_reconciliation_run')),
    sa.PrimaryKeyConstraint('run_id', 'project', name=op.f('pk_reconciliation_scan_part'))
    )


def downgrade() -> None:
    op.drop_table('reconciliation_scan_part')
