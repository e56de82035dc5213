"""Test fixture: DDL that needs an ACCESS EXCLUSIVE lock on epics, as ALTER TABLE does.

Revision ID: x_locks_epics
"""

from alembic import op

revision = "x_locks_epics"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("LOCK TABLE epics IN ACCESS EXCLUSIVE MODE")


def downgrade() -> None:
    pass
