"""Test fixture: a slow migration (TEST_MIGRATION_SLEEP seconds, default 3) that changes no schema.

Revision ID: x_sleeps
"""

import os

from alembic import op

revision = "x_sleeps"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None


def upgrade() -> None:
    seconds = float(os.environ.get("TEST_MIGRATION_SLEEP", "3"))
    op.execute(f"SELECT pg_sleep({seconds})")


def downgrade() -> None:
    pass
