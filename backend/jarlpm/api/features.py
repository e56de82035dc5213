"""``/api/epics/{id}/features`` and ``/api/features/{id}``: the features of an epic."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select

from jarlpm.api.deps import Id, PageDep, SessionDep, fetch_page, get_or_404
from jarlpm.models import Epic, Feature
from jarlpm.schemas import FeatureCreate, FeatureOut, FeatureUpdate, Page

router = APIRouter(tags=["features"])


@router.get("/epics/{epic_id}/features")
def list_features(epic_id: Id, session: SessionDep, page: PageDep) -> Page[FeatureOut]:
    """List an epic's features, oldest first."""
    get_or_404(session, Epic, epic_id, "epic")
    statement = select(Feature).where(Feature.epic_id == epic_id).order_by(Feature.id)
    rows, total = fetch_page(session, statement, page)
    items = [FeatureOut.model_validate(row) for row in rows]
    return Page[FeatureOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.post("/epics/{epic_id}/features", status_code=status.HTTP_201_CREATED)
def create_feature(epic_id: Id, body: FeatureCreate, session: SessionDep) -> FeatureOut:
    """Add a feature to an epic."""
    get_or_404(session, Epic, epic_id, "epic")
    feature = Feature(epic_id=epic_id, **body.model_dump())
    session.add(feature)
    session.commit()
    session.refresh(feature)
    return FeatureOut.model_validate(feature)


@router.get("/features/{feature_id}")
def get_feature(feature_id: Id, session: SessionDep) -> FeatureOut:
    """Return one feature."""
    return FeatureOut.model_validate(get_or_404(session, Feature, feature_id, "feature"))


@router.patch("/features/{feature_id}")
def update_feature(feature_id: Id, body: FeatureUpdate, session: SessionDep) -> FeatureOut:
    """Edit a feature's title, description, priority or status."""
    feature = get_or_404(session, Feature, feature_id, "feature")
    for name, value in body.changes().items():
        setattr(feature, name, value)
    session.commit()
    session.refresh(feature)
    return FeatureOut.model_validate(feature)


@router.delete("/features/{feature_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_feature(feature_id: Id, session: SessionDep) -> Response:
    """Delete a feature and (by cascade) its stories."""
    session.delete(get_or_404(session, Feature, feature_id, "feature"))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
