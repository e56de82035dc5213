"""Specifications of ``supervisor.server.serverlog``: a server process's log records as JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from supervisor.server.serverlog import JsonLineFormatter


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Loggers used by these tests write JSON lines to a buffer; handlers are removed afterwards."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonLineFormatter())
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error", "unit.app")]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(logging.DEBUG)
    yield buffer
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


class TestAccessLog:
    """uvicorn.access records become http.access events with method, path and status as fields."""

    def test_fields(self, stream: io.StringIO) -> None:
        # The call uvicorn's httptools/h11 protocols make for every response.
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:51234", "GET",
                                                 "/api/epics?limit=5", "1.1", 200)
        (line,) = lines(stream)
        assert line["event"] == "http.access" and line["level"] == "info" and line["logger"] == "uvicorn.access"
        assert (line["client"], line["method"], line["path"], line["http_version"], line["status"]) == (
            "10.0.0.7:51234", "GET", "/api/epics?limit=5", "1.1", 200)
        assert line["message"] == '10.0.0.7:51234 - "GET /api/epics?limit=5 HTTP/1.1" 200'

    def test_other_access_messages_keep_their_text(self, stream: io.StringIO) -> None:
        logging.getLogger("uvicorn.access").info("something else %s", "x")
        (line,) = lines(stream)
        assert (line["event"], line["message"]) == ("http.access", "something else x")


class TestRecords:
    """Every record has timestamp, level, event, logger and message; extras and exceptions are kept."""

    def test_common_fields(self, stream: io.StringIO) -> None:
        logging.getLogger("unit.app").warning("pool at %d%%", 90)
        (line,) = lines(stream)
        assert (line["level"], line["event"], line["logger"], line["message"]) == (
            "warning", "server.log", "unit.app", "pool at 90%")
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]

    def test_uvicorn_records(self, stream: io.StringIO) -> None:
        logging.getLogger("uvicorn.error").info("Application startup complete.")
        assert lines(stream)[0]["event"] == "server.uvicorn"

    def test_extra_fields_kept(self, stream: io.StringIO) -> None:
        logging.getLogger("unit.app").info("checked out", extra={"checked_out": 15, "holders": ["a", "b"]})
        (line,) = lines(stream)
        assert (line["checked_out"], line["holders"]) == (15, ["a", "b"])

    def test_extra_event_names_the_event(self, stream: io.StringIO) -> None:
        logging.getLogger("unit.app").error("exhausted", extra={"event": "db.pool.exhausted"})
        (line,) = lines(stream)
        assert line["event"] == "db.pool.exhausted" and list(line).count("event") == 1

    def test_unserialisable_extra_becomes_text(self, stream: io.StringIO) -> None:
        logging.getLogger("unit.app").info("x", extra={"thing": object()})
        assert lines(stream)[0]["thing"].startswith("<object object")

    def test_exception(self, stream: io.StringIO) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("unit.app").exception("request failed")
        (line,) = lines(stream)
        assert line["level"] == "error" and line["message"] == "request failed"
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert line["exception"].endswith("ValueError: boom")

    def test_one_line_per_record(self, stream: io.StringIO) -> None:
        try:
            raise RuntimeError("multi\nline")
        except RuntimeError:
            logging.getLogger("unit.app").exception("a\nb")
        assert len(stream.getvalue().splitlines()) == 1
