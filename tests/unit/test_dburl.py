"""Specifications of ``supervisor.contract.dburl``: driver mapping that keeps the query, and redaction of secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisor.contract import dburl

SPECIAL = "p@ss:w/rd"
SPECIAL_ENCODED = "p%40ss%3Aw%2Frd"


@pytest.fixture(autouse=True)
def _restore_registered_secrets() -> Iterator[None]:
    """Registered secrets are process-wide; each test starts and ends with the same set."""
    saved = set(dburl._secrets)
    dburl._secrets.clear()
    yield
    dburl._secrets.clear()
    dburl._secrets.update(saved)


class TestDriverMapping:
    """postgres:// and postgresql:// become postgresql+psycopg2://, query parameters kept."""

    @pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg2"])
    def test_scheme_mapped_to_psycopg2(self, scheme: str) -> None:
        url = dburl.to_sqlalchemy_url(f"{scheme}://app:pw@db:5432/jarlpm")
        assert url.drivername == "postgresql+psycopg2"
        assert (url.username, url.password, url.host, url.port, url.database) == ("app", "pw", "db", 5432, "jarlpm")

    def test_query_parameters_survive(self) -> None:
        raw = "postgres://app:pw@db/jarlpm?sslmode=require&application_name=x"
        url = dburl.to_sqlalchemy_url(raw)
        assert dict(url.query) == {"sslmode": "require", "application_name": "x"}
        normalised = dburl.normalise(raw)
        assert normalised.startswith("postgresql+psycopg2://app:pw@db/jarlpm?")
        assert "sslmode=require" in normalised and "application_name=x" in normalised

    def test_libpq_dsn_is_plain_postgresql(self) -> None:
        dsn = dburl.libpq_dsn(f"postgres://app:{SPECIAL_ENCODED}@db/jarlpm?sslmode=require")
        assert dsn == f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm?sslmode=require"

    def test_encoded_password_is_decoded(self) -> None:
        assert dburl.to_sqlalchemy_url(f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm").password == SPECIAL

    @pytest.mark.parametrize(("raw", "fragment"), [
        ("mysql://app:pw@db/jarlpm", "scheme 'mysql'"),
        ("postgresql://app:pw@db", "names no database"),
        ("nonsense", "is not a URL"),
        ("postgresql://app:pw@db:port/jarlpm", "port that is not a number"),
    ])
    def test_invalid(self, raw: str, fragment: str) -> None:
        with pytest.raises(dburl.InvalidDatabaseUrl, match=fragment) as info:
            dburl.to_sqlalchemy_url(raw)
        assert "pw@" not in str(info.value)


class TestParse:
    """The URL is read without SQLAlchemy, exactly as SQLAlchemy (the app's engine) reads it."""

    SAMPLES = [
        "postgresql://app:pw@db:5432/jarlpm",
        "postgres://app@db/jarlpm",
        f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm?sslmode=require",
        "postgresql://app:pa/ss#w?rd:x@db:6432/jarlpm?sslmode=verify-full&application_name=a",
        "postgresql://app:50%off@db/jarlpm",
        "postgresql://app:pw@[::1]:5433/jarlpm",
        "postgresql://app:pw@/jarlpm?host=/var/run/postgresql",
        "postgresql:///jarlpm",
        "postgresql+psycopg2://app:pw@db/my%20db",
        "postgresql://app:pw@db/jarlpm?options=-c%20statement_timeout%3D5000&options=-c%20x%3D1",
    ]

    @pytest.mark.parametrize("raw", SAMPLES)
    def test_agrees_with_sqlalchemy(self, raw: str) -> None:
        from sqlalchemy.engine import make_url

        theirs = make_url(raw)
        ours = dburl.parse(raw)
        assert (ours.user, ours.password, ours.host or None, ours.port, ours.database) == \
            (theirs.username, theirs.password, theirs.host, theirs.port, theirs.database)
        assert dict(dburl.to_sqlalchemy_url(raw).query) == dict(theirs.query)

    @pytest.mark.parametrize("raw", SAMPLES)
    def test_libpq_dsn_round_trips(self, raw: str) -> None:
        """What libpq gets decodes to the same parts (psycopg2's own URI parser decides)."""
        from psycopg2.extensions import parse_dsn

        ours = dburl.parse(raw)
        theirs = parse_dsn(dburl.libpq_dsn(raw))
        assert theirs.get("user") == ours.user and theirs.get("password") == ours.password
        assert theirs.get("dbname") == ours.database
        assert theirs.get("port") == (str(ours.port) if ours.port else None)
        if ours.host:
            assert theirs.get("host") == ours.host

    def test_password_with_url_delimiters(self) -> None:
        """A generated password may hold "/", "#" or "?" unencoded: it still ends at the "@"."""
        parts = dburl.parse("postgresql://app:pa/ss#w?rd@db:6432/jarlpm")
        assert (parts.password, parts.host, parts.port, parts.database) == ("pa/ss#w?rd", "db", 6432, "jarlpm")

    def test_no_sqlalchemy_needed(self) -> None:
        """validate_env and the probes parse URLs in processes that never import SQLAlchemy."""
        import subprocess
        import sys

        code = ("import sys; from supervisor.contract import dburl; dburl.validate('postgresql://a:b@h/d'); "
                "dburl.libpq_dsn('postgresql://a:b@h/d'); dburl.describe('postgresql://a:b@h/d'); "
                "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class TestRedact:
    """Passwords are masked wherever they appear: in URLs, keyword strings, and as registered secrets."""

    def test_url_password(self) -> None:
        text = "could not connect to postgresql://app:hunter22@db:5432/jarlpm?sslmode=require"
        assert dburl.redact(text) == "could not connect to postgresql://app:***@db:5432/jarlpm?sslmode=require"

    def test_url_without_password_unchanged(self) -> None:
        assert dburl.redact("postgresql://app@db/jarlpm") == "postgresql://app@db/jarlpm"

    def test_several_urls_in_one_text(self) -> None:
        text = "postgres://a:one1@h1/d and postgresql+psycopg2://b:two2@h2/d"
        assert dburl.redact(text) == "postgres://a:***@h1/d and postgresql+psycopg2://b:***@h2/d"

    def test_placeholder_in_hints_is_kept(self) -> None:
        hint = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        assert dburl.redact(hint) == hint

    @pytest.mark.parametrize(("text", "expected"), [
        ("host=db password=hunter22 dbname=x", "host=db password=*** dbname=x"),
        ("host=db PASSWORD = hunter22", "host=db PASSWORD = ***"),
        ("host=db password='hunter 22' user=a", "host=db password=*** user=a"),
        ("?sslmode=require&password=hunter22&x=1", "?sslmode=require&password=***&x=1"),
    ])
    def test_keyword_password(self, text: str, expected: str) -> None:
        assert dburl.redact(text) == expected

    @pytest.mark.parametrize(("text", "expected"), [
        ("ALTER ROLE app WITH PASSWORD 'hunter22'", "ALTER ROLE app WITH PASSWORD '***'"),
        ("CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'it''s secret' VALID UNTIL 'x'",
         "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '***' VALID UNTIL 'x'"),
        ("alter role app password E'hunt\\'er'", "alter role app password '***'"),
        ("ALTER ROLE app PASSWORD $pw$s3cr'et$pw$;", "ALTER ROLE app PASSWORD '***';"),
        ("ALTER ROLE app PASSWORD 'cut off by track_activity_query_si", "ALTER ROLE app PASSWORD '***'"),
        ("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL"),
    ])
    def test_sql_password_literal(self, text: str, expected: str) -> None:
        """A role's password in a statement (a migration's, a blocker's query) is masked, however quoted."""
        assert dburl.redact(text) == expected

    def test_registered_secret_anywhere(self) -> None:
        dburl.register_url_secrets("postgresql://app:hunter22@db/jarlpm")
        assert dburl.redact("FATAL: bad token hunter22 (hunter22)") == "FATAL: bad token *** (***)"

    def test_short_secrets_are_not_registered(self) -> None:
        dburl.register_secret("ab")
        assert dburl.redact("ab abc") == "ab abc"

    def test_special_characters_encoded_and_decoded(self) -> None:
        dburl.register_url_secrets(f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm")
        assert dburl.redact(f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm") == "postgresql://app:***@db/jarlpm"
        assert dburl.redact(f"the password {SPECIAL} was refused") == "the password *** was refused"
        assert dburl.redact(f"as written: {SPECIAL_ENCODED}.") == "as written: ***."

    def test_decoded_password_inside_a_url_is_masked_whole(self) -> None:
        dburl.register_url_secrets(f"postgresql://app:{SPECIAL_ENCODED}@db/jarlpm")
        redacted = dburl.redact(f"postgresql://app:{SPECIAL}@db/jarlpm")
        assert redacted == "postgresql://app:***@db/jarlpm"

    def test_unparseable_url_password_still_registered(self) -> None:
        dburl.register_url_secrets("postgresql://app:hunter22@db:port/jarlpm")
        assert dburl.redact("hunter22") == "***"

    def test_longest_secret_first(self) -> None:
        dburl.register_secret("hunter")
        dburl.register_secret("hunter22")
        assert dburl.redact("x hunter22 y") == "x *** y"

    def test_nothing_to_register(self) -> None:
        dburl.register_url_secrets(None)
        dburl.register_url_secrets("")
        dburl.register_url_secrets("postgresql://app@db/jarlpm")
        assert dburl._secrets == set()


class TestDescribe:
    """describe() gives a loggable URL: host, port, database and user, never the password."""

    def test_password_hidden(self) -> None:
        shown = dburl.describe(f"postgres://app:{SPECIAL_ENCODED}@db:5432/jarlpm?sslmode=require")
        assert shown == "postgresql://app:***@db:5432/jarlpm?sslmode=require"
        assert SPECIAL not in shown and SPECIAL_ENCODED not in shown

    def test_unparseable(self) -> None:
        assert dburl.describe("mysql://app:hunter22@db/x") == "<unparseable URL>"


class TestPasswordShapes:
    """Passwords with "/", "#", "?" or "@" unencoded: parsed as libpq reads them, or refused; never shown."""

    @pytest.mark.parametrize("password", ["pa/ss-w0rd", "pa#ss-w0rd", "pa?ss-w0rd", "p/a#s?sw0rd:x"])
    def test_delimiters_stay_in_the_password(self, password: str) -> None:
        """"/", "#" and "?" end nothing before the "@": the host, port and database stay right, the password hidden."""
        raw = f"postgresql://app:{password}@db:6432/jarlpm?sslmode=require"
        parts = dburl.parse(raw)
        assert (parts.password, parts.host, parts.port, parts.database) == (password, "db", 6432, "jarlpm")
        assert dburl.describe(raw) == "postgresql://app:***@db:6432/jarlpm?sslmode=require"
        assert dburl.redact(f"could not connect to {raw}") == (
            "could not connect to postgresql://app:***@db:6432/jarlpm?sslmode=require")

    @pytest.mark.parametrize("raw", ["postgresql://app:hunter@22secret@db/jarlpm",
                                     "postgresql://app:pa/ss#w?rd@22secret@db:5432/jarlpm"])
    def test_unencoded_at_is_refused_without_a_trace(self, raw: str) -> None:
        """libpq would read "22secret@db" as the host (and print it); refused, saying how to write it."""
        with pytest.raises(dburl.InvalidDatabaseUrl) as info:
            dburl.validate(raw)
        assert "%40" in str(info.value)
        assert "22secret" not in str(info.value) and "hunter" not in str(info.value)

    def test_unencoded_at_registers_the_whole_password(self) -> None:
        """The password as its writer meant it (up to the last "@") is masked wherever it shows."""
        dburl.register_url_secrets("postgresql://app:hunter@22secret@db/jarlpm")
        assert dburl.redact("echo hunter@22secret") == "echo ***"
        assert "22secret" not in dburl.redact("postgresql://app:hunter@22secret@db/jarlpm")

    def test_encoded_at_is_accepted(self) -> None:
        """``%40`` is the way to write it, and it decodes to "@"."""
        assert dburl.parse("postgresql://app:hunter%4022secret@db/jarlpm").password == "hunter@22secret"
