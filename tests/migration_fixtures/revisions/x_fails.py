"""Test fixture: creates a table, then trips over an existing column (SQLSTATE 42701).

Revision ID: x_fails
"""

import sqlalchemy as sa

from alembic import op

revision = "x_fails"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("scratch_x_fails", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("epics", sa.Column("title", sa.Text()))


def downgrade() -> None:
    op.drop_table("scratch_x_fails")
