"""Test fixture: a no-op revision, to see whether the supervisor went on after the previous one.

Revision ID: x_after
"""

from alembic import op

revision = "x_after"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")


def downgrade() -> None:
    pass
