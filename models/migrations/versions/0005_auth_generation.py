"""auth generation: bumped by every user or token change so services drop cached tokens

Revision ID: 0003_auth_generation
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('auth_generation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('id = 1', name=op.f('ck_auth_generation_singleton')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_generation'))
    )


def downgrade() -> None:
    op.drop_table('auth_generation')
