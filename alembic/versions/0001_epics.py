"""Create epics: the product work that moves through stages from problem to locked epic.

Revision ID: 0001_epics
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001_epics"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of jarlpm.stages.Stage as of this revision: a migration must
# build the same schema whatever the models look like later.
STAGES = (
    "problem_capture",
    "problem_confirmed",
    "outcome_capture",
    "outcome_confirmed",
    "epic_drafted",
    "epic_locked",
)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "epics",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("stage", sa.String(length=32), server_default=STAGES[0], nullable=False),
        sa.Column("problem_statement", sa.Text(), nullable=True),
        sa.Column("desired_outcome", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(_one_of("stage", STAGES), name=op.f("ck_epics_stage")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epics")),
    )


def downgrade() -> None:
    op.drop_table("epics")
