"""The fork server ``jarlpm run`` starts before its own imports (``supervision.earlyfork``, issue #17).

It starts Python and imports uvicorn while the supervisor imports and validates, then
gets its settings (command line, environment, descriptors) and only then imports the
app: the app must see exactly what a fork server spawned later would have seen.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from procs import APPS, REPO, base_env, running, wait_for

from supervisor.server.forkserver import place_descriptors

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}


def processes_with(marker: str) -> list[tuple[int, str]]:
    """(pid, comm) of every live process whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
                    found.append((int(entry.name), (entry / "comm").read_text().strip()))
        except OSError:
            continue
    return found


class TestEarlyForkServer:
    def test_the_app_imports_with_the_validated_environment_and_descriptors(self, app_db: str,
                                                                            tmp_path: Path) -> None:
        """DATABASE_URL_FILE and WEB_CONCURRENCY: the import sees WORKERS and a readable handed-over URL."""
        url_file = tmp_path / "database-url"
        url_file.write_text(app_db)
        env = base_env(None, DATABASE_URL_FILE=str(url_file), WEB_CONCURRENCY="2", LOG_LEVEL="debug", **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            started = sup.find("forkserver.started")
            assert [e["early"] for e in started] == [True]
            assert all(e["forked"] for e in sup.find("child.spawned"))
            status, _, body = sup.get("/import-env")
            assert status == 200, body
            seen = json.loads(body)
            assert seen["WORKERS"] == "2"  # computed by the supervisor from WEB_CONCURRENCY
            assert seen["DATABASE_URL_FILE"].startswith("/proc/self/fd/")  # handed over, not the secret file
            assert seen["url_file_readable"] is True

    def test_no_fork_server_runs_when_it_is_turned_off(self, app_db: str) -> None:
        """JARLPM_FORK_SERVER=0: the service runs spawned processes and no fork server, early or not."""
        marker = f"JARLPM_TEST_MARK={uuid.uuid4().hex}"
        name, value = marker.split("=")
        env = base_env(app_db, JARLPM_FORK_SERVER="0", **{name: value}, **SAMPLE)
        with running(env) as sup:
            pids = sup.wait_event("supervisor.ready", timeout=60)["pids"]
            assert not any(e.get("forked") for e in sup.find("child.spawned"))
            others = [(pid, comm) for pid, comm in processes_with(marker) if pid != sup.pid and pid not in pids]
            assert others == []

    def test_a_start_that_fails_validation_leaves_nothing_running(self) -> None:
        """An invalid variable: exit 78 with its one event, and no fork server left behind."""
        marker = f"JARLPM_TEST_MARK={uuid.uuid4().hex}"
        name, value = marker.split("=")
        env = base_env("postgresql://u:p@127.0.0.1:1/x", DB_POOL_SIZE="many", **{name: value}, **SAMPLE)
        result = subprocess.run([sys.executable, "-m", "supervisor", "run"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 78, result.stderr
        failed = [json.loads(line) for line in result.stdout.splitlines() if '"phase.failed"' in line]
        assert len(failed) == 1 and "DB_POOL_SIZE" in failed[0]["error"]
        assert processes_with(marker) == []


EARLY_PARENT = """
import os, socket, subprocess, sys, time
parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
proc = subprocess.Popen([sys.executable, "-m", "supervisor.server.forkserver", "--early", "--control-fd",
                         str(child_end.fileno()), "--supervisor-pid", str(os.getpid())],
                        pass_fds=(child_end.fileno(),), start_new_session=True)
print(proc.pid, flush=True)
if sys.argv[1] == "close":
    time.sleep(0.5)
    parent_end.close()
    print(proc.wait(timeout=30), flush=True)
else:
    time.sleep(60)
"""


class TestEarlyProtocol:
    """The early fork server on its own: it follows its parent out, and leaves when not configured."""

    def _parent(self, mode: str) -> tuple[subprocess.Popen[str], int]:
        parent = subprocess.Popen([sys.executable, "-c", EARLY_PARENT, mode], cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert parent.stdout is not None
        return parent, int(parent.stdout.readline())

    def test_it_dies_with_the_supervisor_while_it_waits(self) -> None:
        parent, early = self._parent("sleep")
        try:
            wait_for(lambda: Path(f"/proc/{early}/comm").read_text().strip() == "jarlpm-forksrv", 30,
                     "the early fork server named")
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(timeout=30)
            wait_for(lambda: not Path(f"/proc/{early}").exists()
                     or Path(f"/proc/{early}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X"),
                     30, "the early fork server gone")
        finally:
            parent.kill()

    def test_it_exits_quietly_when_it_is_discarded(self) -> None:
        """End of file instead of a configuration: exit 0, nothing imported."""
        parent, _ = self._parent("close")
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == "0"
        finally:
            parent.kill()
            parent.wait(timeout=30)


class TestPlaceDescriptors:
    """Received descriptors land at the numbers the command line and environment name."""

    def test_swapped_numbers_are_placed_without_clobbering(self) -> None:
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        keep = socket.socket()
        try:
            place_descriptors([w1, w2], [w2, w1], keep=keep.fileno())  # w1's pipe now at w2's number
            os.write(w2, b"one")
            os.write(w1, b"two")
            assert os.read(r1, 10) == b"one" and os.read(r2, 10) == b"two"
            assert os.get_inheritable(w1) and os.get_inheritable(w2)
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)
            keep.close()

    def test_a_number_in_use_is_refused(self) -> None:
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        try:
            with pytest.raises(SystemExit, match=f"descriptor {r2} is already in use"):
                place_descriptors([w1], [r2], keep=-1)
        finally:
            for fd in (r1, r2, w2):
                os.close(fd)
