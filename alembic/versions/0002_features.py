"""Create features: deliverable slices of an epic, deleted with it.

Revision ID: 0002_features
Revises: 0001_epics
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002_features"
down_revision: str | Sequence[str] | None = "0001_epics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRIORITIES = ("must_have", "should_have", "could_have", "wont_have")
STATUSES = ("planned", "in_progress", "done")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("epic_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("priority", sa.String(length=32), server_default="should_have", nullable=False),
        sa.Column("status", sa.String(length=32), server_default="planned", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(_one_of("priority", PRIORITIES), name=op.f("ck_features_priority")),
        sa.CheckConstraint(_one_of("status", STATUSES), name=op.f("ck_features_status")),
        sa.ForeignKeyConstraint(["epic_id"], ["epics.id"], name=op.f("fk_features_epic_id_epics"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
    )
    # PostgreSQL does not index foreign keys by itself; without this, listing an
    # epic's features and cascading an epic's delete both scan the whole table.
    op.create_index(op.f("ix_features_epic_id"), "features", ["epic_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_features_epic_id"), table_name="features")
    op.drop_table("features")
