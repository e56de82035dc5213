"""Log conventions through a real supervisor: ``message`` on every line, journald priorities, WEB_CONCURRENCY."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from procs import APPS, REPO, base_env, http_get, running, wait_for

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}
PRIORITY = re.compile(r"^<([0-7])>")
EXPECTED_PRIORITY = {"critical": "2", "error": "3", "warning": "4", "info": "6", "debug": "7"}


class JournalSupervisor:
    """A supervisor whose stdout is a pipe named by JOURNAL_STREAM, as systemd does for the journal."""

    def __init__(self, env: dict[str, str]) -> None:
        read_end, write_end = os.pipe()
        st = os.fstat(write_end)
        env = {**env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        self.port = int(env["PORT"])
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run"], env=env, cwd=REPO,
                                     stdout=write_end, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(write_end)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(os.fdopen(read_end, "rb"),), daemon=True)
        self._reader.start()

    def _read(self, pipe: Any) -> None:
        for raw in iter(pipe.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        """Each line as journalctl -o cat shows it: the prefix stripped, pure JSON left."""
        return [json.loads(PRIORITY.sub("", line, count=1)) for line in list(self.lines)]

    def wait_event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events() if e["event"] == name), None)
        return wait_for(found, timeout, name)  # type: ignore[no-any-return]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


@contextlib.contextmanager
def journal_supervisor(env: dict[str, str]) -> Iterator[JournalSupervisor]:
    sup = JournalSupervisor(env)
    try:
        yield sup
    finally:
        sup.kill()


class TestJournalPriorities:
    """Under journald every line starts with its syslog priority; the rest of the line is the JSON."""

    def test_every_line_prefixed_with_its_level(self, app_db: str) -> None:
        """Supervisor events, phase-process lines and relayed server lines all carry <3>/<4>/<6>."""
        # DB_POOL_SIZ: a typo, so a warning; SIGKILL of a server process: an error.
        env = base_env(app_db, **SAMPLE, DB_POOL_SIZ="3", LOG_LEVEL="debug")
        with journal_supervisor(env) as sup:
            ready = sup.wait_event("supervisor.ready")
            assert http_get(sup.port, "/pid")[0] == 200
            os.kill(ready["pids"][0], signal.SIGKILL)
            sup.wait_event("child.restarting")
            sup.proc.send_signal(signal.SIGTERM)
            assert sup.proc.wait(30) == 0
            sup._reader.join(5)
            lines = list(sup.lines)
        assert lines
        unprefixed = [line for line in lines if not PRIORITY.match(line)]
        assert unprefixed == []
        events = [(PRIORITY.match(line).group(1), json.loads(line[3:])) for line in lines]  # type: ignore[union-attr]
        wrong = [(p, e["event"], e["level"]) for p, e in events if EXPECTED_PRIORITY[e["level"]] != p]
        assert wrong == []
        seen = {(p, e["source"]) for p, e in events}
        assert {("3", "supervisor"), ("4", "supervisor"), ("6", "supervisor"), ("6", "server")} <= seen
        assert any(e["event"] == "phase.completed" and e["phase"] == "migrate" for _, e in events)  # phase process
        assert any(e["event"] == "http.access" for _, e in events)


class TestMessageOnEveryLine:
    """Every JSON line of a real run carries a short human ``message`` beside its ``event``."""

    def test_real_run(self, app_db: str) -> None:
        """The JarlPM backend, two processes from WEB_CONCURRENCY, requests, a stop: every line has a message."""
        # An inherited JOURNAL_STREAM naming another stream (a parent's journal) changes nothing.
        with running(base_env(app_db, WEB_CONCURRENCY="2", LOG_LEVEL="debug", JOURNAL_STREAM="1:1")) as sup:
            ready = sup.wait_event("supervisor.ready", timeout=90)
            assert ready["workers"] == 2 and len(ready["pids"]) == 2
            for path in ("/api/health", "/api/epics", "/api/epics/999999", "/nope"):
                sup.get(path)
            wait_for(lambda: len(sup.find("http.access")) >= 4, 20, "access lines")
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(30) == 0
        events = sup.events()
        missing = [e for e in events if not isinstance(e.get("message"), str) or not e["message"].strip()
                   or e["message"] == e["event"]]
        assert missing == []
        assert {e["source"] for e in events} == {"supervisor", "server"}
        access = sup.find("http.access")[0]
        assert '"GET /api/health HTTP/1.1" 200' in access["message"]
        assert sup.find("supervisor.ready")[0]["message"].startswith("Serving on 127.0.0.1:")
        assert all(line.startswith("{") for line in sup.lines)  # no priority prefix


class TestOperatorCommandFormat:
    """`jarlpm check` prints for people on a terminal and JSON otherwise, unless LOG_FORMAT says."""

    @staticmethod
    def check_output(env: dict[str, str], tty: bool) -> str:
        """`jarlpm check` with an invalid WORKERS (exit 78 before any database), stdout a pty or a pipe."""
        env = {**env, "WORKERS": "0"}
        if not tty:
            proc = subprocess.run([sys.executable, "-m", "supervisor", "check"], env=env, cwd=REPO,
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 78
            return proc.stdout
        import pty

        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "supervisor", "check"], env=env, cwd=REPO,
                                    stdout=terminal, stderr=terminal, start_new_session=True)
            os.close(terminal)
            chunks = []
            while True:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: the terminal's other end closed
                    break
                if not data:
                    break
                chunks.append(data)
            assert proc.wait(60) == 78
        finally:
            os.close(controller)
        return b"".join(chunks).decode("utf-8", "replace")

    def test_terminal_gets_console_lines(self) -> None:
        env = base_env(None)
        env.pop("LOG_FORMAT")
        text = self.check_output(env, tty=True)
        assert "phase.failed" in text and not any(line.startswith("{") for line in text.splitlines())

    def test_pipe_gets_json(self) -> None:
        env = base_env(None)
        env.pop("LOG_FORMAT")
        lines = self.check_output(env, tty=False).splitlines()
        assert lines and all(json.loads(line)["message"] for line in lines)

    def test_log_format_wins(self) -> None:
        """LOG_FORMAT=json on a terminal is JSON."""
        text = self.check_output(base_env(None, LOG_FORMAT="json"), tty=True)
        assert [json.loads(line)["event"] for line in text.splitlines() if line.strip()][-1] == "supervisor.stopped"
