"""Request and response bodies: what clients may send (checked strictly: 422) and get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from jarlpm.models import TITLE_LENGTH, FeatureStatus, Priority, StoryStatus
from jarlpm.stages import Stage

T = TypeVar("T")


def storable(value: str) -> str:
    """Refuse text PostgreSQL cannot store, so it is a 422 naming the field, not a driver error (a 500).

    PostgreSQL's ``text`` and ``jsonb`` cannot hold NUL (U+0000), and a lone
    surrogate (U+D800-U+DFFF, which JSON's ``\\ud800`` escapes can produce) is
    no UTF-8 at all.  ASCII text, nearly all of it, is checked with two scans.
    """
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode") from None
    return value


Storable = AfterValidator(storable)
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_LENGTH), Storable]
Text = Annotated[str, StringConstraints(max_length=10_000), Storable]
StoryPart = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000), Storable]
Criterion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1_000), Storable]
Criteria = Annotated[list[Criterion], Field(max_length=50)]
Points = Annotated[int, Field(ge=0, le=100)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are errors, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Patch(Input):
    """Base of PATCH bodies: omitted fields stay as they are; ``null`` only for optional fields."""

    # Fields a PATCH may omit but never set to null (the columns are NOT NULL).
    required_when_sent: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _reject_null(self) -> Patch:
        nulls = [name for name in self.model_fields_set & self.required_when_sent if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"may not be null: {', '.join(sorted(nulls))}")
        return self

    def changes(self) -> dict[str, object]:
        """The fields the client sent, with their values."""
        return self.model_dump(include=self.model_fields_set)


class Output(BaseModel):
    """Base of response bodies, read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every error but 422: one sentence saying what went wrong and, where it helps, what to do."""

    detail: str


class HealthOut(BaseModel):
    """Liveness: the process answers."""

    status: str
    service: str


class ReadyOut(HealthOut):
    """Readiness: the database answers and its schema is at (or ahead of) the code's head.

    ``pool`` is ``busy`` when every pooled connection was serving and the schema is as last seen.
    """

    schema_: str = Field(alias="schema")
    pool: str | None = None


class NotReadyOut(HealthOut):
    """Not ready (503): ``reason`` says why in generic words (the detail is in the server's log)."""

    reason: str


class Page(BaseModel, Generic[T]):
    """One page of a list, with the total so clients know when to stop."""

    items: list[T]
    total: int
    limit: int
    offset: int


class EpicCreate(Input):
    """A new epic; it always starts at the first stage."""

    title: Title
    description: Text = ""
    problem_statement: Text | None = None
    desired_outcome: Text | None = None


class EpicUpdate(Patch):
    """Changes to an epic; ``stage`` follows the same rule as ``PUT /stage``."""

    required_when_sent: ClassVar[frozenset[str]] = frozenset({"title", "description", "stage"})

    title: Title | None = None
    description: Text | None = None
    problem_statement: Text | None = None
    desired_outcome: Text | None = None
    stage: Stage | None = None


class StageChange(Input):
    """The stage an epic should move to: the next one (or the current one, a no-op)."""

    stage: Stage


class EpicOut(Output):
    """An epic as returned by the API, with the stage it may move to next."""

    id: int
    title: str
    description: str
    stage: Stage
    next_stage: Stage | None
    problem_statement: str | None
    desired_outcome: str | None
    created_at: datetime
    updated_at: datetime


class FeatureCreate(Input):
    """A new feature of an epic."""

    title: Title
    description: Text = ""
    priority: Priority = Priority.SHOULD_HAVE
    status: FeatureStatus = FeatureStatus.PLANNED


class FeatureUpdate(Patch):
    """Changes to a feature."""

    required_when_sent: ClassVar[frozenset[str]] = frozenset({"title", "description", "priority", "status"})

    title: Title | None = None
    description: Text | None = None
    priority: Priority | None = None
    status: FeatureStatus | None = None


class FeatureOut(Output):
    """A feature as returned by the API."""

    id: int
    epic_id: int
    title: str
    description: str
    priority: Priority
    status: FeatureStatus
    created_at: datetime
    updated_at: datetime


class StoryCreate(Input):
    """A new user story of a feature: "As a <as_a>, I want <i_want>, so that <so_that>"."""

    title: Title
    as_a: StoryPart
    i_want: StoryPart
    so_that: StoryPart
    acceptance_criteria: Criteria = []
    story_points: Points | None = None
    status: StoryStatus = StoryStatus.DRAFT


class StoryUpdate(Patch):
    """Changes to a user story; ``story_points: null`` clears the estimate."""

    required_when_sent: ClassVar[frozenset[str]] = frozenset(
        {"title", "as_a", "i_want", "so_that", "acceptance_criteria", "status"}
    )

    title: Title | None = None
    as_a: StoryPart | None = None
    i_want: StoryPart | None = None
    so_that: StoryPart | None = None
    acceptance_criteria: Criteria | None = None
    story_points: Points | None = None
    status: StoryStatus | None = None


class StoryOut(Output):
    """A user story as returned by the API."""

    id: int
    feature_id: int
    title: str
    as_a: str
    i_want: str
    so_that: str
    acceptance_criteria: list[str]
    story_points: int | None
    status: StoryStatus
    created_at: datetime
    updated_at: datetime
