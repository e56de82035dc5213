"""The ORM models: epics own features, features own user stories; the database cascades deletes."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from jarlpm.stages import FINAL_STAGE, FIRST_STAGE, Stage, next_stage

# Deterministic constraint names, so migrations can name (and drop) what
# autogenerate and ``alembic check`` compare against.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TITLE_LENGTH = 200
ENUM_LENGTH = 32


class Priority(enum.StrEnum):
    """MoSCoW priority of a feature."""

    MUST_HAVE = "must_have"
    SHOULD_HAVE = "should_have"
    COULD_HAVE = "could_have"
    WONT_HAVE = "wont_have"


class FeatureStatus(enum.StrEnum):
    """Delivery status of a feature."""

    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class StoryStatus(enum.StrEnum):
    """Refinement and delivery status of a user story."""

    DRAFT = "draft"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    DONE = "done"


def enum_column(kind: type[enum.StrEnum], name: str) -> sa.Enum:
    """A VARCHAR with a CHECK constraint storing the enum's values.

    Not a native PostgreSQL ENUM: adding a value then needs no ``ALTER TYPE``
    (which cannot run inside a transaction on older servers), and downgrades
    have no type to drop.
    """
    return sa.Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=ENUM_LENGTH,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base whose metadata is alembic's ``target_metadata``."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """Creation and last-change times, set by the database clock."""

    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), onupdate=sa.func.now()
    )


class VersionedMixin:
    """A row version, bumped by every UPDATE: the ETag, and the guard against lost updates.

    SQLAlchemy's ``version_id_col`` writes ``UPDATE ... WHERE id = :id AND
    version = :loaded`` (and the same for DELETE), so a change made by someone
    else since the row was loaded fails (StaleDataError) instead of being
    silently overwritten.
    """

    version: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("1"))

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class Epic(VersionedMixin, TimestampMixin, Base):
    """A large body of work, shaped from a confirmed problem and outcome, then locked."""

    __tablename__ = "epics"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(TITLE_LENGTH))
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    # Indexed: lists filter by stage.
    stage: Mapped[Stage] = mapped_column(
        enum_column(Stage, "stage"), server_default=FIRST_STAGE.value, index=True
    )
    problem_statement: Mapped[str | None] = mapped_column(sa.Text)
    desired_outcome: Mapped[str | None] = mapped_column(sa.Text)

    @property
    def next_stage(self) -> Stage | None:
        """The only stage this epic may move to, or None once it is locked."""
        return next_stage(self.stage)

    @property
    def locked(self) -> bool:
        """True once the epic reached its final stage and its content is frozen."""
        return self.stage is FINAL_STAGE


class Feature(VersionedMixin, TimestampMixin, Base):
    """A deliverable slice of an epic."""

    __tablename__ = "features"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    epic_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("epics.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(TITLE_LENGTH))
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    priority: Mapped[Priority] = mapped_column(
        enum_column(Priority, "priority"), server_default=Priority.SHOULD_HAVE.value
    )
    status: Mapped[FeatureStatus] = mapped_column(
        enum_column(FeatureStatus, "status"), server_default=FeatureStatus.PLANNED.value
    )


class UserStory(VersionedMixin, TimestampMixin, Base):
    """A user story: "As a <persona>, I want <action>, so that <benefit>", plus criteria, points."""

    __tablename__ = "user_stories"
    __table_args__ = (
        sa.CheckConstraint("story_points IS NULL OR story_points BETWEEN 0 AND 100", name="story_points_range"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    feature_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("features.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(TITLE_LENGTH))
    as_a: Mapped[str] = mapped_column(sa.Text)
    i_want: Mapped[str] = mapped_column(sa.Text)
    so_that: Mapped[str] = mapped_column(sa.Text)
    acceptance_criteria: Mapped[list[str]] = mapped_column(JSONB, server_default=sa.text("'[]'::jsonb"))
    story_points: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[StoryStatus] = mapped_column(
        enum_column(StoryStatus, "status"), server_default=StoryStatus.DRAFT.value
    )
