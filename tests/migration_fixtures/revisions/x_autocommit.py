"""Test fixture: a revision that must run outside a transaction (as CREATE INDEX CONCURRENTLY must).

Revision ID: x_autocommit
"""

from alembic import op

revision = "x_autocommit"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SELECT 1")


def downgrade() -> None:
    pass
