"""The error statuses each operation documents in OpenAPI, with their bodies and headers."""

from __future__ import annotations

from typing import Any

from jarlpm.schemas import ErrorOut

ETAG_HEADER = {"description": 'The version of the resource, for If-Match (e.g. "v3").', "schema": {"type": "string"}}
RETRY_AFTER_HEADER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}

RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body could not be read (not UTF-8)."},
    404: {"model": ErrorOut, "description": "A resource named in the path does not exist."},
    409: {
        "model": ErrorOut,
        "description": "The change breaks a rule (stage order, content a stage confirms, a locked epic), "
        "or clashes with a concurrent change.",
    },
    412: {
        "model": ErrorOut,
        "description": "If-Match names a version the resource no longer has; nothing was changed.",
        "headers": {"ETag": ETAG_HEADER},
    },
    413: {"model": ErrorOut, "description": "The request body is larger than MAX_REQUEST_BODY_BYTES."},
    503: {
        "model": ErrorOut,
        "description": "The database is unreachable or every pooled connection is busy; retry later.",
        "headers": {"Retry-After": RETRY_AFTER_HEADER},
    },
}

WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": {"ETag": ETAG_HEADER}}}


def documented(*statuses: int, etag: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the given error statuses (422 FastAPI adds), and the ETag on 200."""
    documented_: dict[int | str, dict[str, Any]] = {status: RESPONSES[status] for status in statuses}
    if etag:
        documented_.update(WITH_ETAG)
    return documented_


LIST = documented(404, 503)
CREATE = documented(400, 404, 409, 413, 503)
READ = documented(404, 503, etag=True)
UPDATE = documented(400, 404, 409, 412, 413, 503, etag=True)
DELETE = documented(404, 409, 412, 503)
