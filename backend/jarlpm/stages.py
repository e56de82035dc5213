"""The epic lifecycle: its stages in order, and the rule for moving: forward, one step at a time."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Stage(enum.StrEnum):
    """Where an epic stands; the declaration order is the lifecycle order."""

    PROBLEM_CAPTURE = "problem_capture"
    PROBLEM_CONFIRMED = "problem_confirmed"
    OUTCOME_CAPTURE = "outcome_capture"
    OUTCOME_CONFIRMED = "outcome_confirmed"
    EPIC_DRAFTED = "epic_drafted"
    EPIC_LOCKED = "epic_locked"


ORDER: tuple[Stage, ...] = tuple(Stage)
FIRST_STAGE = ORDER[0]
FINAL_STAGE = ORDER[-1]


# What a stage confirms: the epic's field that must hold text to enter that
# stage, and to stay there or beyond (the original JarlPM's rule: a problem is
# confirmed only once stated, an outcome once described, an epic locked once drafted).
CONFIRMS: dict[Stage, str] = {
    Stage.PROBLEM_CONFIRMED: "problem_statement",
    Stage.OUTCOME_CONFIRMED: "desired_outcome",
    Stage.EPIC_LOCKED: "description",
}


class StageTransitionError(ValueError):
    """A requested stage change breaks the lifecycle rule; the message says which way and why."""


def next_stage(stage: Stage) -> Stage | None:
    """Return the stage after ``stage``, or None once the epic is locked."""
    index = ORDER.index(stage)
    return ORDER[index + 1] if index + 1 < len(ORDER) else None


def check_transition(current: Stage, target: Stage) -> None:
    """Allow staying put or moving exactly one stage forward; raise StageTransitionError otherwise.

    Each stage confirms what the previous one captured (a problem before its
    outcome, an outcome before the epic), so skipping one would lock an epic
    whose problem nobody confirmed, and going back would unlock a commitment.
    Staying put is allowed so that a client retrying a request that timed out
    does not get an error for a change that already happened.
    """
    if target == current:
        return
    step = ORDER.index(target) - ORDER.index(current)
    if step < 0:
        raise StageTransitionError(
            f"cannot move an epic backwards from {current.value} to {target.value}: stages only move forward"
        )
    if step > 1:
        expected = next_stage(current)
        assert expected is not None  # step > 1 means current is not the final stage
        raise StageTransitionError(
            f"cannot skip from {current.value} to {target.value}: the next stage is {expected.value}"
        )


def required_content(stage: Stage) -> tuple[str, ...]:
    """The fields an epic at ``stage`` must have filled in: what it and every earlier stage confirmed."""
    reached = ORDER[: ORDER.index(stage) + 1]
    return tuple(field for confirmed, field in CONFIRMS.items() if confirmed in reached)


def check_content(stage: Stage, content: Mapping[str, str | None]) -> None:
    """Raise StageTransitionError naming each field ``stage`` needs that is missing or blank."""
    missing = [name for name in required_content(stage) if not (content.get(name) or "").strip()]
    if missing:
        raise StageTransitionError(
            f"an epic at {stage.value} needs {' and '.join(missing)}: a stage cannot be confirmed "
            f"while the content it confirms is missing"
        )
