"""ids never reused on SQLite; which runner owns a process or a download, and when a download last moved

SQLite gives a new row the highest id not in use, so deleting the newest weights (or session, dataset...) handed
its id, and with it its file name and cached model, to the next object. AUTOINCREMENT tables never go back; SQLite
cannot add it to an existing table, so batch mode rebuilds each one with its rows (their ids, and so the counter,
are kept). PostgreSQL's sequences never reuse a value: nothing to do there. Downloads get a runner (failed by their own
server's next start) and an `updated` stamp (failed by the stale sweep when their worker was lost).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("users", "models", "projects", "weights", "datasets", "trainings", "sessions", "videos", "allowed_properties")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=255), nullable=True))
    with op.batch_alter_table("weights_downloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("updated", sa.DateTime(), nullable=True))
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
    with op.batch_alter_table("weights_downloads", schema=None) as batch_op:
        batch_op.drop_column("updated")
        batch_op.drop_column("runner")
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.drop_column("runner")
