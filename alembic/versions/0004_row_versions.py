"""Add a row version to epics, features and user_stories (ETag, If-Match); index epics.stage.

Every existing row starts at version 1.  Adding a NOT NULL column with a
constant default is a catalog-only change on PostgreSQL 11+: no table rewrite.

Revision ID: 0004_row_versions
Revises: 0003_user_stories
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004_row_versions"
down_revision: str | Sequence[str] | None = "0003_user_stories"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("epics", "features", "user_stories")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))
    # Lists filter epics by stage.
    op.create_index(op.f("ix_epics_stage"), "epics", ["stage"])


def downgrade() -> None:
    op.drop_index(op.f("ix_epics_stage"), table_name="epics")
    for table in reversed(TABLES):
        op.drop_column(table, "version")
