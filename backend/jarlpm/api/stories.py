"""``/api/features/{id}/stories`` and ``/api/stories/{id}``: the user stories of a feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from jarlpm.api import responses
from jarlpm.api.conditional import IfMatch, check_if_match, with_etag
from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.models import Feature, StoryStatus, UserStory
from jarlpm.schemas import Page, StoryCreate, StoryOut, StoryUpdate

router = APIRouter(tags=["stories"])


@router.get("/features/{feature_id}/stories", responses=responses.LIST)
def list_stories(
    feature_id: Id,
    session: SessionDep,
    page: PageDep,
    status: Annotated[StoryStatus | None, Query(description="Only this status.")] = None,
) -> Page[StoryOut]:
    """List a feature's stories, oldest first unless ``sort`` says otherwise; ``status`` filters."""
    get_or_404(session, Feature, feature_id, "feature")
    statement = select(UserStory).where(UserStory.feature_id == feature_id)
    if status is not None:
        statement = statement.where(UserStory.status == status)
    rows, total = fetch_page(session, UserStory, statement, page)
    items = [StoryOut.model_validate(row) for row in rows]
    return Page[StoryOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("/features/{feature_id}/stories", status_code=status.HTTP_201_CREATED, responses=responses.CREATE)
def create_story(feature_id: Id, body: StoryCreate, session: SessionDep, response: Response) -> StoryOut:
    """Add a user story to a feature."""
    get_or_404(session, Feature, feature_id, "feature")
    story = UserStory(feature_id=feature_id, **body.model_dump())
    session.add(story)
    session.commit()
    session.refresh(story)
    with_etag(response, story)
    return StoryOut.model_validate(story)


@router.get("/stories/{story_id}", responses=responses.READ)
def get_story(story_id: Id, session: SessionDep, response: Response) -> StoryOut:
    """Return one user story, with its ETag."""
    story = get_or_404(session, UserStory, story_id, "story")
    with_etag(response, story)
    return StoryOut.model_validate(story)


@router.patch("/stories/{story_id}", responses=responses.UPDATE)
def update_story(
    story_id: Id, body: StoryUpdate, session: SessionDep, response: Response, if_match: IfMatch = None
) -> StoryOut:
    """Edit a story; ``story_points: null`` clears the estimate."""
    story = get_or_404(session, UserStory, story_id, "story", for_update=True)
    check_if_match(if_match, story, f"story {story_id}")
    for name, value in body.changes().items():
        setattr(story, name, value)
    session.commit()
    session.refresh(story)
    with_etag(response, story)
    return StoryOut.model_validate(story)


@router.delete("/stories/{story_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses.DELETE)
def delete_story(story_id: Id, session: SessionDep, if_match: IfMatch = None) -> Response:
    """Delete a user story."""
    story = get_or_404(session, UserStory, story_id, "story", for_update=True)
    check_if_match(if_match, story, f"story {story_id}")
    session.delete(story)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
