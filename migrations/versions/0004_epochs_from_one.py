"""epochs count from 1 everywhere a person reads them: stored epoch numbers shifted by one

Run metrics, checkpoints, a run's best epoch and the `best_epoch` inside run reports and job results
were written counting from 0; from now on they count from 1, as progress, logs and plots always did.
`runs.resumed_from_epoch` and `jobs.epoch` are counts of finished epochs and keep their values. A
downgrade shifts them back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_runs = sa.table('runs', sa.column('id', sa.Integer), sa.column('best_epoch', sa.Integer),
                 sa.column('report', sa.JSON))
_jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('result', sa.JSON))
_metrics = sa.table('run_metrics', sa.column('epoch', sa.Integer))
_checkpoints = sa.table('checkpoints', sa.column('epoch', sa.Integer))


def _shift(by: int) -> None:
    # through negative numbers: (run, epoch, split, name) is unique, and PostgreSQL checks it row by row
    op.execute(_metrics.update().values(epoch=-(_metrics.c.epoch + by)))
    op.execute(_metrics.update().values(epoch=-_metrics.c.epoch))
    op.execute(_checkpoints.update().where(_checkpoints.c.epoch.is_not(None))
               .values(epoch=_checkpoints.c.epoch + by))
    op.execute(_runs.update().where(_runs.c.best_epoch.is_not(None)).values(best_epoch=_runs.c.best_epoch + by))
    connection = op.get_bind()
    for table, column in ((_runs, _runs.c.report), (_jobs, _jobs.c.result)):
        for row_id, value in connection.execute(sa.select(table.c.id, column)).all():
            if isinstance(value, dict) and isinstance(value.get('best_epoch'), int):
                connection.execute(table.update().where(table.c.id == row_id)
                                   .values({column.name: {**value, 'best_epoch': value['best_epoch'] + by}}))


def upgrade() -> None:
    _shift(1)


def downgrade() -> None:
    _shift(-1)
