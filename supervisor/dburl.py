"""Database URL handling: driver mapping that keeps query parameters, and redaction of secrets."""

from __future__ import annotations

import json
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_ACCEPTED_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg2"}

# user:password@ inside any scheme://… string, wherever it appears (error messages too).
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# password=… in libpq keyword strings and query parameters.
_KEYWORD_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s&]+)", re.IGNORECASE)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_sorted_secrets: tuple[str, ...] = ()


class InvalidDatabaseUrl(ValueError):
    """The URL cannot be used; the message never contains its password."""


_SHAPE = "expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


def validate(raw: str) -> None:
    """Check a URL's shape without importing SQLAlchemy (validate_env must stay fast).

    Start-up time matters: the server processes are spawned right after validation,
    so nothing heavy may be imported before it.
    """
    text = raw.strip()
    if "://" not in text:
        raise InvalidDatabaseUrl(f"is not a URL; {_SHAPE}")
    scheme = text.split("://", 1)[0].lower()
    if scheme not in _ACCEPTED_SCHEMES:
        raise InvalidDatabaseUrl(f"has scheme {scheme!r}; expected postgresql:// or postgres://")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidDatabaseUrl(f"has a port that is not a number; {_SHAPE}") from None
    if not unquote(parts.path.lstrip("/")):
        raise InvalidDatabaseUrl(f"names no database; {_SHAPE}")


def url_password(raw: str) -> str | None:
    """The decoded password of a URL, or None."""
    try:
        password = urlsplit(raw.strip()).password
    except ValueError:
        return None
    return unquote(password) if password else None


def to_sqlalchemy_url(raw: str) -> URL:
    """Parse ``raw`` and map ``postgres://``/``postgresql://`` to the psycopg2 driver.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed
    (``No module named 'psycopg'``), so the driver is always named explicitly.
    Query parameters such as ``sslmode`` are kept as they are.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise InvalidDatabaseUrl(
            "is not a URL; expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None
    except ValueError:
        # SQLAlchemy's int() of the port: a config error (exit 78), not a crash (exit 70).
        raise InvalidDatabaseUrl(
            "has a port that is not a number; expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None
    if url.drivername not in _ACCEPTED_SCHEMES:
        raise InvalidDatabaseUrl(
            f"has scheme {url.drivername!r}; expected postgresql:// or postgres://"
        )
    if not url.database:
        raise InvalidDatabaseUrl("names no database; expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
    return url.set(drivername="postgresql+psycopg2")


def normalise(raw: str) -> str:
    """The URL as a string for SQLAlchemy, password included (never log it)."""
    return to_sqlalchemy_url(raw).render_as_string(hide_password=False)


def libpq_dsn(raw: str) -> str:
    """The URL as libpq understands it (plain ``postgresql://``), for direct psycopg2 connects."""
    return to_sqlalchemy_url(raw).set(drivername="postgresql").render_as_string(hide_password=False)


def describe(raw: str) -> str:
    """A loggable form: ``postgresql://user:***@host:port/db``."""
    try:
        return to_sqlalchemy_url(raw).set(drivername="postgresql").render_as_string(hide_password=True)
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
    for value in (password, match.group("pw") if match else None):
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
    return text
