"""``/api/epics/{id}/features`` and ``/api/features/{id}``: the features of an epic."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from jarlpm.api import responses
from jarlpm.api.conditional import IfMatch, check_if_match, with_etag
from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.models import Epic, Feature, FeatureStatus, Priority
from jarlpm.schemas import FeatureCreate, FeatureOut, FeatureUpdate, Page

router = APIRouter(tags=["features"])


@router.get("/epics/{epic_id}/features", responses=responses.LIST)
def list_features(
    epic_id: Id,
    session: SessionDep,
    page: PageDep,
    status: Annotated[FeatureStatus | None, Query(description="Only this status.")] = None,
    priority: Annotated[Priority | None, Query(description="Only this priority.")] = None,
) -> Page[FeatureOut]:
    """List an epic's features, oldest first unless ``sort`` says otherwise; ``status``, ``priority`` filter."""
    get_or_404(session, Epic, epic_id, "epic")
    statement = select(Feature).where(Feature.epic_id == epic_id)
    if status is not None:
        statement = statement.where(Feature.status == status)
    if priority is not None:
        statement = statement.where(Feature.priority == priority)
    rows, total = fetch_page(session, Feature, statement, page)
    items = [FeatureOut.model_validate(row) for row in rows]
    return Page[FeatureOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("/epics/{epic_id}/features", status_code=status.HTTP_201_CREATED, responses=responses.CREATE)
def create_feature(epic_id: Id, body: FeatureCreate, session: SessionDep, response: Response) -> FeatureOut:
    """Add a feature to an epic."""
    get_or_404(session, Epic, epic_id, "epic")
    feature = Feature(epic_id=epic_id, **body.model_dump())
    session.add(feature)
    session.commit()
    session.refresh(feature)
    with_etag(response, feature)
    return FeatureOut.model_validate(feature)


@router.get("/features/{feature_id}", responses=responses.READ)
def get_feature(feature_id: Id, session: SessionDep, response: Response) -> FeatureOut:
    """Return one feature, with its ETag."""
    feature = get_or_404(session, Feature, feature_id, "feature")
    with_etag(response, feature)
    return FeatureOut.model_validate(feature)


@router.patch("/features/{feature_id}", responses=responses.UPDATE)
def update_feature(
    feature_id: Id, body: FeatureUpdate, session: SessionDep, response: Response, if_match: IfMatch = None
) -> FeatureOut:
    """Edit a feature's title, description, priority or status."""
    feature = get_or_404(session, Feature, feature_id, "feature", for_update=True)
    check_if_match(if_match, feature, f"feature {feature_id}")
    for name, value in body.changes().items():
        setattr(feature, name, value)
    session.commit()
    session.refresh(feature)
    with_etag(response, feature)
    return FeatureOut.model_validate(feature)


@router.delete("/features/{feature_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses.DELETE)
def delete_feature(feature_id: Id, session: SessionDep, if_match: IfMatch = None) -> Response:
    """Delete a feature and (by cascade) its stories."""
    feature = get_or_404(session, Feature, feature_id, "feature", for_update=True)
    check_if_match(if_match, feature, f"feature {feature_id}")
    session.delete(feature)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
