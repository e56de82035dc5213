"""Database URLs: read them from the environment (or ``*_FILE`` secrets) and point them at psycopg2.

Shared by the server, ``alembic/env.py`` and the supervisor, so that every entry
point accepts the same spellings of the same URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PSYCOPG2_SCHEME = "postgresql+psycopg2"

# SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not a
# dependency ("No module named 'psycopg'"); Heroku-style ``postgres://`` is not
# recognised at all.  Both are rewritten; any other scheme is left alone.
_REWRITTEN_SCHEMES = frozenset({"postgres", "postgresql"})


def normalise_database_url(url: str) -> str:
    """Return ``url`` with a ``postgres://``/``postgresql://`` scheme mapped to psycopg2.

    Only the scheme is replaced, textually, so credentials, percent-escapes and
    query parameters (``sslmode``, ``options``, ...) survive byte for byte.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _REWRITTEN_SCHEMES:
        return f"{PSYCOPG2_SCHEME}://{rest}"
    return url


def read_env_url(name: str, environ: Mapping[str, str]) -> str | None:
    """Return the URL in ``name``, else the stripped content of the file named by ``name_FILE``.

    ``*_FILE`` is the container-secrets convention (the value lives in a mounted
    file, not in the process environment).  Returns None when neither is set.
    """
    value = environ.get(name, "").strip()
    if value:
        return value
    path = environ.get(f"{name}_FILE", "").strip()
    if path:
        content = Path(path).read_text(encoding="utf-8").strip()
        return content or None
    return None


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
