"""Database URL handling: driver mapping that keeps query parameters, and redaction of secrets."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_ACCEPTED_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg2"}

# user:password@ inside any scheme://… string, wherever it appears (error messages too).
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# The password as its writer meant it when it holds an unencoded "@": up to the last "@".
_GREEDY_PASSWORD = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:(?P<pw>[^\s]*)@[^@]*$")
# password=… in libpq keyword strings and query parameters.
_KEYWORD_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s&]+)", re.IGNORECASE)
# PASSWORD '…' in SQL (CREATE/ALTER ROLE … [ENCRYPTED] PASSWORD '…'), as a statement or an error quotes it;
# the literal may be an E'' string or dollar-quoted, and may end where the text was cut.
_SQL_PASSWORD = re.compile(
    r"(?P<pre>\bpassword\s+)(?P<pw>[Ee]'(?:[^'\\]|\\.|'')*(?:'|$)|'(?:[^']|'')*(?:'|$)"
    r"|\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|$))",
    re.IGNORECASE | re.DOTALL)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_sorted_secrets: tuple[str, ...] = ()


class InvalidDatabaseUrl(ValueError):
    """The URL cannot be used; the message never contains its password."""


_SHAPE = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME"

# scheme://[user[:password]@][host][:port][/database][?query], read the way SQLAlchemy
# reads it (the app's engine does): the password runs to the next "@", so it may hold
# "/", "#", "?" or ":" unencoded, which urllib would take for the path, fragment or query.
_URL_PARTS = re.compile(
    r"(?P<scheme>[\w+]+)://"
    r"(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:\[(?P<ipv6host>[^/?]+)\]|(?P<host>[^/:?]*))"
    r"(?::(?P<port>[^/?]*))?"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?(?P<query>.*))?",
    re.DOTALL,
)


@dataclass(frozen=True)
class UrlParts:
    """A database URL's parts, decoded; parsed without SQLAlchemy (see ``parse``)."""

    user: str | None
    password: str | None
    host: str
    port: int | None
    database: str
    query: str

    def libpq(self, hide_password: bool = False) -> str:
        """A plain ``postgresql://`` URI, every part re-encoded for libpq."""
        auth = ""
        if self.user is not None:
            auth = quote(self.user, safe="")
            if self.password is not None:
                auth += ":" + ("***" if hide_password else quote(self.password, safe=""))
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"postgresql://{auth}{host}{port}/{quote(self.database, safe='')}{query}"


def parse(raw: str) -> UrlParts:
    """Split a URL into its parts, or raise ``InvalidDatabaseUrl`` saying what is wrong.

    Importing SQLAlchemy costs about 0.1 s of CPU: validate_env and the database
    phases' probes run before the server processes are up, so they parse it here.
    """
    text = raw.strip()
    if "://" not in text:
        raise InvalidDatabaseUrl(f"is not a URL; {_SHAPE}")
    scheme = text.split("://", 1)[0].lower()
    if scheme not in _ACCEPTED_SCHEMES:
        raise InvalidDatabaseUrl(f"has scheme {scheme!r}; expected postgresql:// or postgres://")
    match = _URL_PARTS.match(text)
    if match is None:
        raise InvalidDatabaseUrl(f"is not a URL; {_SHAPE}")
    if "@" in (match.group("host") or ""):
        # postgresql://app:p@ss@db/x: libpq and SQLAlchemy take "p" for the password and
        # "ss@db" for the host, so the connection fails with part of the password in the
        # error message.  Refuse it here, saying how to write it.
        raise InvalidDatabaseUrl("has an '@' that is not percent-encoded (in the password?); "
                                 "expected every '@' in the user or password written as %40")
    port = match.group("port")
    if port and not port.isdigit():
        raise InvalidDatabaseUrl(f"has a port that is not a number; {_SHAPE}")
    database = unquote(match.group("database") or "")
    if not database:
        raise InvalidDatabaseUrl(f"names no database; {_SHAPE}")
    user, password = match.group("user"), match.group("password")
    return UrlParts(
        user=unquote(user) if user is not None else None,
        password=unquote(password) if password is not None else None,
        host=match.group("ipv6host") or match.group("host") or "",
        port=int(port) if port else None,
        database=database,
        query=match.group("query") or "",
    )


def validate(raw: str) -> None:
    """Check a URL's shape (validate_env must stay fast: see ``parse``)."""
    parse(raw)


def url_password(raw: str) -> str | None:
    """The decoded password of a URL, or None."""
    try:
        return parse(raw).password or None
    except InvalidDatabaseUrl:
        return None


def to_sqlalchemy_url(raw: str) -> URL:
    """The URL for SQLAlchemy, with the psycopg2 driver named; query parameters kept as they are.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed
    (``No module named 'psycopg'``), so the driver is always named explicitly.  Read
    through ``parse`` first, so that a URL the probes accept is the URL the engine gets.
    """
    from sqlalchemy.engine import make_url

    return make_url(parse(raw).libpq()).set(drivername="postgresql+psycopg2")


def normalise(raw: str) -> str:
    """The URL as a string for SQLAlchemy, password included (never log it)."""
    return to_sqlalchemy_url(raw).render_as_string(hide_password=False)


def libpq_dsn(raw: str) -> str:
    """The URL as libpq understands it (plain ``postgresql://``), for direct psycopg2 connects."""
    return parse(raw).libpq()


def describe(raw: str) -> str:
    """A loggable form: ``postgresql://user:***@host:port/db``."""
    try:
        return parse(raw).libpq(hide_password=True)
    except InvalidDatabaseUrl:
        return redact("<unparseable URL>")


def register_secret(value: str | None) -> None:
    """Remember a secret (a password) so that it is masked wherever it shows up in a log line.

    Its JSON-escaped form is remembered too, so an already rendered line can be redacted.
    """
    global _sorted_secrets
    if value and len(value) >= 3:
        escaped = json.dumps(value)[1:-1]
        with _secrets_lock:
            _secrets.update({value, escaped})
            # Longest first, computed once here rather than on every line.
            _sorted_secrets = tuple(sorted(_secrets, key=len, reverse=True))


def register_url_secrets(raw: str | None) -> None:
    """Register the password of a database URL, if it has one: decoded, and as written.

    A URL carries ``p@ss`` as ``p%40ss``; either form can end up in a message.
    """
    if not raw:
        return
    password = url_password(raw)
    match = _URL_PASSWORD.search(raw)
    greedy = _GREEDY_PASSWORD.match(raw.strip())
    for value in (password, match.group("pw") if match else None, greedy.group("pw") if greedy else None):
        if value:
            register_secret(str(value))


def _mask_url_password(match: re.Match[str]) -> str:
    # Leave the documentation placeholder alone so hints can show the URL's shape.
    if match.group("pw") == "PASSWORD":
        return match.group(0)
    return match.group("pre") + "***" + match.group("at")


def redact(text: str) -> str:
    """Mask URL passwords, ``password=`` keywords and every registered secret in ``text``.

    It runs on every relayed line, so the regular expressions only run when the text
    could match them (it has ``://`` or ``password``).
    """
    global _sorted_secrets
    if len(_sorted_secrets) != len(_secrets):  # the set was changed directly (tests)
        with _secrets_lock:
            _sorted_secrets = tuple(sorted(_secrets, key=len, reverse=True))
    # Registered secrets first: the URL pattern stops at a password's first "@", so
    # running it first would mask "p" of "p@ss:w/rd" and leave "ss:w/rd" behind.
    for secret in _sorted_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    if "://" in text:
        text = _URL_PASSWORD.sub(_mask_url_password, text)
    if "assword" in text or "ASSWORD" in text:
        text = _KEYWORD_PASSWORD.sub(r"\g<pre>***", text)
        text = _SQL_PASSWORD.sub(r"\g<pre>'***'", text)
    return text
