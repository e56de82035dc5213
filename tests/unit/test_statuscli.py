"""Specifications of ``jarlpm status``'s rendering of the supervisor's snapshot."""

from __future__ import annotations

from typing import Any

from supervisor.supervision.statuscli import render

SNAPSHOT: dict[str, Any] = {
    "state": "running", "ready": True, "uptime_s": 3605.2, "reloads": 1, "listen": "0.0.0.0:8001",
    "workers": [
        {"worker": 0, "pid": 4312, "ready": True, "uptime_s": 120.4, "heartbeat_age_s": 0.4, "restarts": 2,
         "last_exit": {"pid": 4001, "signal": "SIGKILL", "at": 1700000000.0}, "restart_in_s": None},
        {"worker": 1, "pid": 4313, "ready": True, "uptime_s": 3600.0, "heartbeat_age_s": 0.2, "restarts": 0,
         "last_exit": None, "restart_in_s": None},
        {"worker": 2, "pid": None, "ready": False, "uptime_s": None, "heartbeat_age_s": None, "restarts": 4,
         "last_exit": {"pid": 4100, "exit_code": 3, "at": 1700000001.0}, "restart_in_s": 3.9},
    ],
}


class TestRender:
    """A header with the supervisor's state, then one aligned row per worker slot."""

    def test_standby_line_only_with_a_standby(self) -> None:
        assert "standby: pid 4400" in render({**SNAPSHOT, "standby": 4400})
        assert "standby" not in render(SNAPSHOT)

    def test_fork_server_line_only_with_a_ready_fork_server(self) -> None:
        assert "fork server: pid 4500" in render({**SNAPSHOT, "fork_server": 4500})
        assert "fork server" not in render(SNAPSHOT)

    def test_header(self) -> None:
        header = render(SNAPSHOT).splitlines()[0]
        for part in ("state: running", "ready: yes", "listen: 0.0.0.0:8001", "uptime: 3605.2s", "reloads: 1"):
            assert part in header

    def test_one_row_per_worker_under_column_titles(self) -> None:
        lines = render(SNAPSHOT).splitlines()
        assert lines[1].split() == ["worker", "pid", "ready", "uptime", "restarts", "last", "exit"]
        assert len(lines) == 2 + len(SNAPSHOT["workers"])

    def test_rows(self) -> None:
        rows = [line.split() for line in render(SNAPSHOT).splitlines()[2:]]
        assert rows[0] == ["0", "4312", "yes", "120.4s", "2", "pid", "4001", "signal", "SIGKILL"]
        assert rows[1] == ["1", "4313", "yes", "3600.0s", "0", "-"]
        assert rows[2] == ["2", "-", "no", "-", "4", "pid", "4100", "code", "3"]

    def test_columns_are_aligned(self) -> None:
        lines = render(SNAPSHOT).splitlines()[1:]
        ready_column = lines[0].index("ready") + len("ready")
        assert all(line[:ready_column].rstrip().endswith(("ready", "yes", "no")) for line in lines)

    def test_not_ready_and_missing_fields(self) -> None:
        text = render({"state": "starting", "ready": False})
        assert "state: starting" in text and "ready: no" in text and "reloads: 0" in text
        assert len(text.splitlines()) == 2

    def test_phase_while_starting(self) -> None:
        """During the start-up phases (or a reload's migration) the header names the phase."""
        header = render({**SNAPSHOT, "state": "starting", "ready": False, "phase": "migrate"}).splitlines()[0]
        assert header.startswith("state: starting (phase migrate)   ready: no")
        assert "phase" not in render({**SNAPSHOT, "phase": None}).splitlines()[0]
