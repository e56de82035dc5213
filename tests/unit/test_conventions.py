"""The conventions people bring from other servers: WEB_CONCURRENCY, metrics address, log format, messages."""

from __future__ import annotations

import json
import os

import pytest

from supervisor.contract import conventions, dburl
from supervisor.contract.config import ConfigError, Settings, load_settings
from supervisor.logs import journal, logsetup, messages

URL = "postgresql://app:pw@localhost:5432/jarlpm"


def settings(**env: str) -> Settings:
    return load_settings({"DATABASE_URL": URL, **env})


def problem_of(**env: str) -> str:
    with pytest.raises(ConfigError) as info:
        settings(**env)
    assert len(info.value.problems) == 1, info.value.problems
    return str(info.value.problems[0])


class TestWebConcurrency:
    """WEB_CONCURRENCY stands in for WORKERS when WORKERS is unset, validated the same way."""

    def test_used_when_workers_is_unset(self) -> None:
        """WEB_CONCURRENCY=3 alone gives three server processes."""
        assert settings(WEB_CONCURRENCY="3").workers == 3

    def test_workers_wins(self) -> None:
        """WORKERS set beside WEB_CONCURRENCY is what counts."""
        assert settings(WORKERS="2", WEB_CONCURRENCY="5").workers == 2

    def test_empty_workers_falls_back(self) -> None:
        """An empty WORKERS is unset, as for every other variable."""
        assert settings(WORKERS="", WEB_CONCURRENCY="4").workers == 4

    @pytest.mark.parametrize("value", ["0", "65", "two", "1.5"])
    def test_invalid_value_names_web_concurrency(self, value: str) -> None:
        """A bad WEB_CONCURRENCY is reported under its own name with the same range as WORKERS."""
        text = problem_of(WEB_CONCURRENCY=value)
        assert text.startswith("WEB_CONCURRENCY ") and "from 1 to 64" in text

    def test_not_a_typo(self) -> None:
        """WEB_CONCURRENCY and METRICS_* draw no 'unknown variable' warning."""
        assert not settings(WEB_CONCURRENCY="2", METRICS_PORT="9091", METRICS_HOST="127.0.0.1").warnings


class TestMetricsAddress:
    """METRICS_PORT turns metrics on; METRICS_HOST defaults to HOST."""

    def test_off_by_default(self) -> None:
        assert settings().metrics_port is None

    def test_port_and_default_host(self) -> None:
        """METRICS_HOST follows HOST unless set."""
        s = settings(METRICS_PORT="9091", HOST="127.0.0.1")
        assert (s.metrics_port, s.metrics_host) == (9091, "127.0.0.1")
        assert settings(METRICS_PORT="9091", METRICS_HOST="[::1]").metrics_host == "::1"

    def test_same_as_port_is_refused(self) -> None:
        """Metrics cannot share the server's port."""
        assert problem_of(METRICS_PORT="8001").startswith("METRICS_PORT is 8001, the same as PORT")

    def test_bad_values(self) -> None:
        assert problem_of(METRICS_PORT="http").startswith("METRICS_PORT ")
        assert problem_of(METRICS_HOST="a b").startswith("METRICS_HOST ")


class TestCommandLogFormat:
    """Operator commands print for people at a terminal, JSON for pipes, unless LOG_FORMAT says."""

    @pytest.mark.parametrize(("env", "tty", "expected"), [
        ({}, True, "console"), ({}, False, "json"),
        ({"LOG_FORMAT": "json"}, True, "json"), ({"LOG_FORMAT": "console"}, False, "console"),
        ({"LOG_FORMAT": "bogus"}, False, "json"),
    ])
    def test_choice(self, env: dict[str, str], tty: bool, expected: str) -> None:
        assert conventions.command_log_format(env, tty) == expected


class TestMessages:
    """Every line gets a short human sentence in ``message``."""

    def test_template(self) -> None:
        assert messages.message_for({"event": "child.ready", "pid": 12, "startup_ms": 340}) == \
            "Server process 12 ready in 340 ms"

    def test_template_missing_field_falls_back(self) -> None:
        """A template whose field is absent never raises: the generic sentence is used."""
        assert messages.message_for({"event": "child.ready"}) == "Child ready"

    def test_generic_uses_scalar_fields_not_long_ones(self) -> None:
        text = messages.message_for({"event": "db.pool.warmed", "connections": 5, "stacks": ["x"],
                                     "hint": "h", "duration_ms": 12})
        assert text == "Db pool warmed: connections=5, duration_ms=12"

    def test_existing_message_kept_but_event_name_replaced(self) -> None:
        """A real sentence stays; a message that only repeats the event name is replaced."""
        assert messages.ensure_message({"event": "server.log", "message": "hello"})["message"] == "hello"
        assert messages.ensure_message({"event": "db.pool.x", "message": "db.pool.x"})["message"] == "Db pool x"

    def test_rendered_line_carries_message_and_no_secret(self) -> None:
        """The message is added before redaction: a URL in a field never leaks through it."""
        dburl.register_url_secrets(URL)
        event = logsetup._add_message(None, "info", {"event": "db.wait.retry", "attempt": 1, "delay_s": 0.5,
                                                    "error": f"cannot reach {URL}"})
        line = logsetup.json_renderer(logsetup._redact_processor(None, "info", event))
        assert json.loads(line)["message"] == "Database not reachable yet (attempt 1); retrying in 0.5 s"
        assert "pw@" not in line


class TestJournalPrefix:
    """Under journald each line starts with its syslog priority."""

    def test_matches_only_the_named_stream(self) -> None:
        read_end, write_end = os.pipe()
        try:
            st = os.fstat(write_end)
            assert journal.stream_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, write_end)
            assert not journal.stream_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, write_end)
            assert not journal.stream_is_journal({"JOURNAL_STREAM": "junk"}, write_end)
            assert not journal.stream_is_journal({}, write_end)
        finally:
            os.close(read_end)
            os.close(write_end)

    def test_prefixes(self) -> None:
        render = logsetup.journal_renderer(logsetup.json_renderer)
        assert render({"level": "error", "event": "x"}).startswith('<3>{"level": "error"')
        assert [journal.prefix(lv) for lv in ("warning", "info", "debug", "odd")] == ["<4>", "<6>", "<7>", "<6>"]
