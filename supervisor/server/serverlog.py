"""Logging inside a server process: stdlib records (uvicorn's, the app's) as JSON lines on stdout.

The supervisor reads these lines, stamps ``source: server`` and the process's pid,
redacts them and writes them into its single stream.  Only JSON is written here;
formatting for people (``LOG_FORMAT=console``) is the supervisor's job.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else came from ``extra=`` and is kept as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message", "taskName"}


_DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# One encoder for every record: json.dumps with any option builds a new encoder per call,
# and this runs on the server's event loop for every request's access line (issue #17).
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def _event_name(record: logging.LogRecord) -> str:
    # An app that logs a bare dotted name (log.info("db.pool.warmed", extra=...)) is naming
    # its event, structlog-style.
    if isinstance(record.msg, str) and not record.args and _DOTTED.match(record.msg):
        return record.msg
    if record.name == "uvicorn.access":
        return "http.access"
    if record.name.startswith("uvicorn"):
        return "server.uvicorn"
    return "server.log"


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record with timestamp, level, event, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or _event_name(record),
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            payload.update(client=client, method=method, path=path, http_version=version,
                           status=status)
        # uvicorn's access line ('127.0.0.1:5 - "GET / HTTP/1.1" 200') is already the sentence.
        payload["message"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "event" and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return _ENCODER.encode(payload)


def configure(level: str = "info") -> None:
    """Route the root logger and uvicorn's loggers to JSON lines on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(level.upper())
