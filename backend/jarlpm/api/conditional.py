"""Conditional requests: a resource's ``ETag`` (its row version) and the ``If-Match`` check against it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from jarlpm.errors import PreconditionFailed
from jarlpm.models import VersionedMixin

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description=(
            'The ETag of the version this change is based on (from GET), e.g. "v3", or * for any. '
            "A stale one gets 412 and nothing changes; omit it to change unconditionally."
        ),
    ),
]


def etag(instance: VersionedMixin) -> str:
    """A strong ETag: the row version, which every change of the resource bumps."""
    return f'"v{instance.version}"'


def with_etag(response: Response, instance: VersionedMixin) -> None:
    """Put ``instance``'s ETag on ``response``."""
    response.headers["ETag"] = etag(instance)


def check_if_match(if_match: str | None, instance: VersionedMixin, what: str) -> None:
    """Raise PreconditionFailed unless ``If-Match`` is absent, ``*``, or names the current version.

    Strong comparison (RFC 9110, 13.1.1): a weak tag (``W/"v3"``) never matches.
    The caller holds the row locked (or relies on the versioned UPDATE), so the
    version compared is the one the change will be applied to.
    """
    if if_match is None:
        return
    current = etag(instance)
    for tag in if_match.split(","):
        if tag.strip() in ("*", current):
            return
    raise PreconditionFailed(
        f"{what} has changed since the version in If-Match ({if_match.strip()[:100]}); "
        f"the current ETag is {current}: reload it and retry",
        current,
    )
