"""The supervisor's own logger: structlog's calling convention through the fixed chain, to the sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from supervisor.logs import logsetup


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TextIO]:
    """A fresh sink writing to a file (the sink writes to a descriptor), the runtime restored afterwards."""
    for name in ("sink", "render", "level", "pid"):
        monkeypatch.setattr(logsetup.LogRuntime, name, getattr(logsetup.LogRuntime, name))
    monkeypatch.setattr(logsetup.LogRuntime, "sink", None)
    with (tmp_path / "log").open("w+") as out:
        logsetup.configure("json", "info", stream=out)
        yield out


def lines(out: TextIO) -> list[dict[str, object]]:
    logsetup.flush()
    return [json.loads(line) for line in Path(out.name).read_text().splitlines()]


def test_an_event_is_stamped_redacted_and_rendered(stream: TextIO) -> None:
    logsetup.get_logger().warning("db.not_ready", url="postgresql://app:s3cret@db/x", attempt=2)
    [event] = lines(stream)
    assert event["event"] == "db.not_ready" and event["level"] == "warning" and event["attempt"] == 2
    assert event["source"] == "supervisor" and isinstance(event["pid"], int) and event["timestamp"]
    assert "s3cret" not in json.dumps(event) and event["message"]


def test_bound_values_go_on_every_event_of_that_logger_only(stream: TextIO) -> None:
    log = logsetup.get_logger()
    bound = log.bind(command="migrate upgrade")
    bound.info("migrate.started")
    log.info("supervisor.ready")
    first, second = lines(stream)
    assert first["command"] == "migrate upgrade" and "command" not in second


def test_level_is_read_when_logging_so_a_logger_made_before_configure_follows_it(stream: TextIO) -> None:
    log = logsetup.get_logger()
    log.debug("child.prespawned", pid=1)
    logsetup.configure("json", "debug", stream=stream)
    log.debug("child.prespawned", pid=2)
    log.critical("supervisor.crashed", error="x")
    events = lines(stream)
    assert [e["event"] for e in events] == ["child.prespawned", "supervisor.crashed"]
    assert events[0]["pid"] == 2 and events[1]["level"] == "critical"
