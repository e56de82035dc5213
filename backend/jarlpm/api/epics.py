"""``/api/epics``: create, read, edit, delete epics and move them through their stages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from jarlpm.api import responses
from jarlpm.api.conditional import IfMatch, check_if_match, with_etag
from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.errors import Conflict
from jarlpm.models import Epic
from jarlpm.schemas import EpicCreate, EpicOut, EpicUpdate, Page, StageChange
from jarlpm.stages import CONFIRMS, Stage, check_content, check_transition

router = APIRouter(prefix="/epics", tags=["epics"])


@router.get("", responses=responses.LIST)
def list_epics(
    session: SessionDep, page: PageDep, stage: Annotated[Stage | None, Query(description="Only this stage.")] = None
) -> Page[EpicOut]:
    """List epics, oldest first unless ``sort`` says otherwise; ``stage`` filters."""
    statement = select(Epic)
    if stage is not None:
        statement = statement.where(Epic.stage == stage)
    rows, total = fetch_page(session, Epic, statement, page)
    items = [EpicOut.model_validate(row) for row in rows]
    return Page[EpicOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("", status_code=status.HTTP_201_CREATED, responses=responses.CREATE)
def create_epic(body: EpicCreate, session: SessionDep, response: Response) -> EpicOut:
    """Create an epic at the first stage."""
    epic = Epic(**body.model_dump())
    session.add(epic)
    session.commit()
    session.refresh(epic)  # server defaults: stage, timestamps
    with_etag(response, epic)
    return EpicOut.model_validate(epic)


@router.get("/{epic_id}", responses=responses.READ)
def get_epic(epic_id: Id, session: SessionDep, response: Response) -> EpicOut:
    """Return one epic, with its ETag."""
    epic = get_or_404(session, Epic, epic_id, "epic")
    with_etag(response, epic)
    return EpicOut.model_validate(epic)


@router.patch("/{epic_id}", responses=responses.UPDATE)
def update_epic(
    epic_id: Id, body: EpicUpdate, session: SessionDep, response: Response, if_match: IfMatch = None
) -> EpicOut:
    """Edit an epic; a ``stage`` follows the stage rule; a locked epic's content is frozen."""
    epic = _locked_row(session, epic_id, if_match)
    changes = body.changes()
    raw_target = changes.pop("stage", None)
    target = epic.stage if raw_target is None else Stage(str(raw_target))
    check_transition(epic.stage, target)
    edited = {name: value for name, value in changes.items() if getattr(epic, name) != value}
    if edited and epic.locked:
        raise Conflict(
            f"epic {epic_id} is locked ({epic.stage.value}): its content can no longer be "
            f"edited (tried: {', '.join(sorted(edited))})"
        )
    if target != epic.stage or edited.keys() & set(CONFIRMS.values()):
        content = {name: getattr(epic, name) for name in CONFIRMS.values()}
        content.update({name: value for name, value in edited.items() if name in content})
        check_content(target, content)
    for name, value in edited.items():
        setattr(epic, name, value)
    epic.stage = target
    return _save(session, epic, response)


@router.put("/{epic_id}/stage", responses=responses.UPDATE)
def change_stage(
    epic_id: Id, body: StageChange, session: SessionDep, response: Response, if_match: IfMatch = None
) -> EpicOut:
    """Move an epic to the next stage: 409 backwards, skipping, or with the content it confirms missing."""
    epic = _locked_row(session, epic_id, if_match)
    check_transition(epic.stage, body.stage)
    if body.stage != epic.stage:
        check_content(body.stage, {name: getattr(epic, name) for name in CONFIRMS.values()})
    epic.stage = body.stage
    return _save(session, epic, response)


@router.delete("/{epic_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses.DELETE)
def delete_epic(epic_id: Id, session: SessionDep, if_match: IfMatch = None) -> Response:
    """Delete an epic and (the database cascades) its features and their stories; never a locked one."""
    epic = _locked_row(session, epic_id, if_match)
    if epic.locked:
        raise Conflict(f"epic {epic_id} is locked ({epic.stage.value}): a locked epic cannot be deleted")
    session.delete(epic)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _locked_row(session: Session, epic_id: int, if_match: str | None) -> Epic:
    """Load the epic FOR UPDATE, so two concurrent changes cannot both pass the rules or If-Match."""
    epic = get_or_404(session, Epic, epic_id, "epic", for_update=True)
    check_if_match(if_match, epic, f"epic {epic_id}")
    return epic


def _save(session: Session, epic: Epic, response: Response) -> EpicOut:
    session.commit()
    session.refresh(epic)  # updated_at is set by the database
    with_etag(response, epic)
    return EpicOut.model_validate(epic)
