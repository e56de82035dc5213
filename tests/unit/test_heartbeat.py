"""Specifications of ``supervisor.contract.heartbeat``: the shared cell both processes map."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from supervisor.contract.heartbeat import HeartbeatCell


@pytest.fixture
def cell() -> Iterator[HeartbeatCell]:
    made = HeartbeatCell.create()
    yield made
    made.close()


class TestHeartbeatCell:
    """A beat written through one mapping is read through another, with no message in between."""

    def test_fresh_cell_never_beat(self, cell: HeartbeatCell) -> None:
        assert cell.last() == 0.0

    def test_beat_is_seen_through_another_mapping(self, cell: HeartbeatCell) -> None:
        other = HeartbeatCell.attach(os.dup(cell.fd))
        try:
            other.beat(123.5)
            assert cell.last() == 123.5
        finally:
            other.close()

    def test_beat_from_another_process_on_the_same_clock(self, cell: HeartbeatCell) -> None:
        """A child writes time.monotonic(); the parent reads a moment between its own two readings."""
        before = time.monotonic()
        code = f"from supervisor.contract.heartbeat import HeartbeatCell; HeartbeatCell.attach({cell.fd}).beat()"
        subprocess.run([sys.executable, "-c", code], pass_fds=(cell.fd,), check=True, timeout=30)
        assert before <= cell.last() <= time.monotonic()

    def test_close_twice_is_harmless(self) -> None:
        made = HeartbeatCell.create()
        made.close()
        made.close()
