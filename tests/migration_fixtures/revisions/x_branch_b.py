"""Test fixture: one of two revisions developed in parallel on the same parent (two heads).

Revision ID: x_branch_b
"""

from alembic import op

revision = "x_branch_b"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")


def downgrade() -> None:
    pass
