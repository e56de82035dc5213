"""``/api/epics``: create, read, edit, delete epics and move them through their stages."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select

from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.errors import Conflict, NotFound
from jarlpm.models import Epic
from jarlpm.schemas import EpicCreate, EpicOut, EpicUpdate, Page, StageChange
from jarlpm.stages import Stage, check_transition

router = APIRouter(prefix="/epics", tags=["epics"])


@router.get("")
def list_epics(session: SessionDep, page: PageDep) -> Page[EpicOut]:
    """List epics, oldest first."""
    rows, total = fetch_page(session, select(Epic).order_by(Epic.id), page)
    items = [EpicOut.model_validate(row) for row in rows]
    return Page[EpicOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_epic(body: EpicCreate, session: SessionDep) -> EpicOut:
    """Create an epic at the first stage."""
    epic = Epic(**body.model_dump())
    session.add(epic)
    session.commit()
    session.refresh(epic)  # server defaults: stage, timestamps
    return EpicOut.model_validate(epic)


@router.get("/{epic_id}")
def get_epic(epic_id: Id, session: SessionDep) -> EpicOut:
    """Return one epic."""
    return EpicOut.model_validate(get_or_404(session, Epic, epic_id, "epic"))


@router.patch("/{epic_id}")
def update_epic(epic_id: Id, body: EpicUpdate, session: SessionDep) -> EpicOut:
    """Edit an epic; a ``stage`` follows the stage rule; a locked epic's content is frozen."""
    epic = _locked_row(session, epic_id)
    changes = body.changes()
    target = changes.pop("stage", None)
    if target is not None:
        check_transition(epic.stage, Stage(str(target)))
    edited = {name: value for name, value in changes.items() if getattr(epic, name) != value}
    if edited and epic.locked:
        raise Conflict(
            f"epic {epic_id} is locked ({epic.stage.value}): its content can no longer be "
            f"edited (tried: {', '.join(sorted(edited))})"
        )
    for name, value in edited.items():
        setattr(epic, name, value)
    if target is not None:
        epic.stage = Stage(str(target))
    return _save(session, epic)


@router.put("/{epic_id}/stage")
def change_stage(epic_id: Id, body: StageChange, session: SessionDep) -> EpicOut:
    """Move an epic to the next stage: 409 backwards or skipping; the current stage is a no-op."""
    epic = _locked_row(session, epic_id)
    check_transition(epic.stage, body.stage)
    epic.stage = body.stage
    return _save(session, epic)


@router.delete("/{epic_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_epic(epic_id: Id, session: SessionDep) -> Response:
    """Delete an epic; the database deletes its features and their stories with it."""
    session.delete(get_or_404(session, Epic, epic_id, "epic"))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _locked_row(session: SessionDep, epic_id: int) -> Epic:
    """Load the epic FOR UPDATE, so two concurrent stage changes cannot both pass the rule."""
    epic = session.scalar(select(Epic).where(Epic.id == epic_id).with_for_update())
    if epic is None:
        raise NotFound("epic", epic_id)
    return epic


def _save(session: SessionDep, epic: Epic) -> EpicOut:
    session.commit()
    session.refresh(epic)  # updated_at is set by the database
    return EpicOut.model_validate(epic)
