"""``/api/features/{id}/stories`` and ``/api/stories/{id}``: the user stories of a feature."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select

from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.models import Feature, UserStory
from jarlpm.schemas import Page, StoryCreate, StoryOut, StoryUpdate

router = APIRouter(tags=["stories"])


@router.get("/features/{feature_id}/stories")
def list_stories(feature_id: Id, session: SessionDep, page: PageDep) -> Page[StoryOut]:
    """List a feature's stories, oldest first."""
    get_or_404(session, Feature, feature_id, "feature")
    statement = select(UserStory).where(UserStory.feature_id == feature_id).order_by(UserStory.id)
    rows, total = fetch_page(session, statement, page)
    items = [StoryOut.model_validate(row) for row in rows]
    return Page[StoryOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("/features/{feature_id}/stories", status_code=status.HTTP_201_CREATED)
def create_story(feature_id: Id, body: StoryCreate, session: SessionDep) -> StoryOut:
    """Add a user story to a feature."""
    get_or_404(session, Feature, feature_id, "feature")
    story = UserStory(feature_id=feature_id, **body.model_dump())
    session.add(story)
    session.commit()
    session.refresh(story)
    return StoryOut.model_validate(story)


@router.get("/stories/{story_id}")
def get_story(story_id: Id, session: SessionDep) -> StoryOut:
    """Return one user story."""
    return StoryOut.model_validate(get_or_404(session, UserStory, story_id, "story"))


@router.patch("/stories/{story_id}")
def update_story(story_id: Id, body: StoryUpdate, session: SessionDep) -> StoryOut:
    """Edit a story; ``story_points: null`` clears the estimate."""
    story = get_or_404(session, UserStory, story_id, "story")
    for name, value in body.changes().items():
        setattr(story, name, value)
    session.commit()
    session.refresh(story)
    return StoryOut.model_validate(story)


@router.delete("/stories/{story_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_story(story_id: Id, session: SessionDep) -> Response:
    """Delete a user story."""
    session.delete(get_or_404(session, UserStory, story_id, "story"))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
