"""Create user_stories: "As a ..., I want ..., so that ..." stories of a feature, deleted with it.

Revision ID: 0003_user_stories
Revises: 0002_features
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0003_user_stories"
down_revision: str | Sequence[str] | None = "0002_features"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("draft", "ready", "in_progress", "done")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "user_stories",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("feature_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("as_a", sa.Text(), nullable=False),
        sa.Column("i_want", sa.Text(), nullable=False),
        sa.Column("so_that", sa.Text(), nullable=False),
        sa.Column(
            "acceptance_criteria",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("story_points", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="draft", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "story_points IS NULL OR story_points BETWEEN 0 AND 100",
            name=op.f("ck_user_stories_story_points_range"),
        ),
        sa.CheckConstraint(_one_of("status", STATUSES), name=op.f("ck_user_stories_status")),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name=op.f("fk_user_stories_feature_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_stories")),
    )
    # Indexed for the same reasons as features.epic_id: lists and cascades.
    op.create_index(op.f("ix_user_stories_feature_id"), "user_stories", ["feature_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_stories_feature_id"), table_name="user_stories")
    op.drop_table("user_stories")
