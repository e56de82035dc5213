"""Specifications of ``supervisor.database.errors``: which database errors waiting can fix, and which exit 77."""

from __future__ import annotations

import pytest

from supervisor.contract.exitcodes import ExitCode
from supervisor.database.errors import classify, classify_exception, first_line

# What libpq says at connect time (psycopg2 gives no SQLSTATE then), as first_line() joins it.
PREFIX = 'connection to server at "127.0.0.1", port 5432 failed: '


class TestPermanent:
    """Credentials, missing databases and missing privileges are not retried: exit 77 with a hint."""

    @pytest.mark.parametrize(("message", "kind"), [
        ('FATAL:  password authentication failed for user "app"', "authentication_failed"),
        ('FATAL:  role "app" does not exist', "authentication_failed"),
        ('FATAL:  role "app" is not permitted to log in', "authentication_failed"),
        ("fe_sendauth: no password supplied", "authentication_failed"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.5", user "app", database "jarlpm", no encryption',
         "authentication_failed"),
        ('FATAL:  database "jarlpm" does not exist', "database_missing"),
        ('FATAL:  permission denied for database "jarlpm" DETAIL:  User does not have CONNECT privilege.',
         "permission_denied"),
        ("permission denied for schema public", "permission_denied"),
    ])
    def test_not_retryable(self, message: str, kind: str) -> None:
        diagnosis = classify(None, PREFIX + message)
        assert (diagnosis.kind, diagnosis.retryable, diagnosis.exit_code) == (kind, False, ExitCode.NOPERM)
        assert int(diagnosis.exit_code) == 77
        assert diagnosis.hint

    def test_ssl_mismatch_is_a_configuration_error(self) -> None:
        diagnosis = classify(None, PREFIX + "server does not support SSL, but SSL was required")
        assert (diagnosis.kind, diagnosis.retryable, int(diagnosis.exit_code)) == ("ssl_mismatch", False, 78)

    def test_hints_say_what_to_do(self) -> None:
        assert "password" in classify(None, "password authentication failed").hint
        assert "createdb" in classify(None, 'database "x" does not exist').hint
        assert "GRANT" in classify(None, "permission denied for table epics").hint


class TestRetryable:
    """Errors that waiting can fix (the server starting, the network, capacity) are retried."""

    @pytest.mark.parametrize("message", [
        "Connection refused Is the server running on that host and accepting TCP/IP connections?",
        "FATAL:  the database system is starting up",
        "FATAL:  the database system is shutting down",
        "FATAL:  the database system is in recovery mode",
        "timeout expired",
        'could not translate host name "db" to address: Name or service not known',
        'could not translate host name "db" to address: Temporary failure in name resolution',
        "server closed the connection unexpectedly",
        "SSL SYSCALL error: EOF detected",
        "something nobody has seen before",
    ])
    def test_retryable(self, message: str) -> None:
        diagnosis = classify(None, PREFIX + message)
        assert diagnosis.retryable is True
        assert diagnosis.exit_code == ExitCode.UNAVAILABLE

    @pytest.mark.parametrize(("pgcode", "message"), [
        (None, "FATAL:  sorry, too many clients already"),
        (None, "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"),
        ("53300", "FATAL:  too many connections for role \"app\""),
    ])
    def test_capacity_is_retried_with_its_own_code_and_hint(self, pgcode: str | None, message: str) -> None:
        """A database at capacity is waited for, then exits 75 with a capacity hint, not "firewall"."""
        diagnosis = classify(pgcode, PREFIX + message)
        assert diagnosis.retryable is True and diagnosis.kind == "database_at_capacity"
        assert diagnosis.exit_code == ExitCode.TEMPFAIL
        assert "max_connections" in diagnosis.hint and "firewall" not in diagnosis.hint

    def test_transient_text_wins_over_a_role_name(self) -> None:
        assert classify(None, 'FATAL:  the database system is starting up (role "x")').retryable


class TestSqlstate:
    """A SQLSTATE, when the server sent one, decides before the message text."""

    @pytest.mark.parametrize(("code", "kind"), [
        ("28P01", "authentication_failed"), ("28000", "authentication_failed"),
        ("3D000", "database_missing"), ("42501", "permission_denied"),
    ])
    def test_permanent_code_beats_transient_text(self, code: str, kind: str) -> None:
        diagnosis = classify(code, "connection refused, the database system is starting up")
        assert (diagnosis.kind, diagnosis.retryable) == (kind, False)

    @pytest.mark.parametrize("code", ["57P01", "57P03", "53300", "08006"])
    def test_transient_code_beats_permanent_text(self, code: str) -> None:
        assert classify(code, "password authentication failed for user").retryable is True


class _FakePgError(Exception):
    """Shaped like psycopg2.Error: a message and a ``pgcode``."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


class _Wrapper(Exception):
    """Shaped like sqlalchemy.exc.DBAPIError: the driver's error in ``orig``."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__("wrapped")
        self.orig = orig


class TestClassifyException:
    """A driver error, bare or wrapped by SQLAlchemy, is classified by its SQLSTATE and first lines."""

    def test_wrapped(self) -> None:
        assert classify_exception(_Wrapper(_FakePgError("anything", "3D000"))).kind == "database_missing"

    def test_multi_line_message(self) -> None:
        error = _FakePgError('connection to server at "h" failed:\nFATAL:  password authentication failed\n', None)
        assert classify_exception(error).kind == "authentication_failed"

    def test_first_line_joins_and_truncates(self) -> None:
        assert first_line("  a\n\n  b  \n") == "a b"
        assert len(first_line("x" * 2000)) == 500
