"""jobs: liveness (phase, since when, last heartbeat, epochs finished when the attempt began) and why a
job stopped

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('phase', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('phase_started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('start_epoch', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


COLUMNS = ('heartbeat_at', 'start_epoch', 'phase_started_at', 'phase', 'stop_reason')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite (3.35+) drops a column in place; a batch copy of `jobs` would break the runs' foreign keys
        for column in COLUMNS:
            op.execute(f'ALTER TABLE jobs DROP COLUMN {column}')
        return
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.drop_column(column)
