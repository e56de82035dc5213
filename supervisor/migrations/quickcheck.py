"""The restart of a release already verified, recognised with psycopg2 alone.

Most starts change nothing: a crash-restarted container, a scaled-out replica, a
rolled node.  The migrate phase's full path imports SQLAlchemy, Alembic and the
models (about 0.2 s of CPU: as much as ``alembic upgrade head``), and on a 2-core
machine that competes with the server processes importing the app.  After a full
path found the database at head and the models in step, the stamp row remembers
``revision:code:catalog`` (``fingerprint``).  When the database is still at that
revision, the code still has that fingerprint (the revisions, env.py, the models,
the libraries) and the catalog that hash, the full path could only come to the same
answer, so it is skipped.

Anything else (no stamp, a stamp of another environment, another revision, another
schema, code that cannot be fingerprinted, any database error) is ``None``: the full
path decides, and reports what it finds.  Every replica decides alone, from the
database and its own code; nothing is cached on the host.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from supervisor.contract.config import Settings
from supervisor.contract.paths import alembic_ini
from supervisor.database import probe
from supervisor.migrations import fingerprint, stamp

APPLICATION_NAME = "jarlpm-migrate"


@dataclass(frozen=True)
class Verified:
    """The database is at ``revision``, stamped, and its models were found in step."""

    revision: str
    ms: int


def verified_restart(settings: Settings, ini: Path | None = None) -> Verified | None:
    """``Verified`` when this code was already found in step with this schema; otherwise None."""
    started = time.monotonic()
    url = settings.migration_url
    if url is None or settings.db_reset_on_startup:
        return None
    roots = fingerprint.code_roots(ini or alembic_ini())
    try:
        code = fingerprint.code_digest(*roots) if roots else None
    except OSError:
        code = None
    if code is None:
        return None
    try:
        found = _read_database(url)
    except psycopg2.Error:
        return None  # the full path connects again and reports the error properly
    if found is None:
        return None
    revisions, row, catalog = found
    if len(revisions) != 1 or not stamp.row_satisfies(row, settings.jarlpm_env):
        return None
    assert row is not None
    if row.get("models_checked") != fingerprint.compose(revisions[0], code, catalog):
        return None
    return Verified(revisions[0], round((time.monotonic() - started) * 1000))


def _read_database(url: str) -> tuple[list[str], dict[str, Any] | None, str] | None:
    """The revisions in Alembic's version table, the stamp row and the catalog's hash."""
    conn = probe.connect(url, timeout=10, application_name=APPLICATION_NAME)
    try:
        with conn.cursor() as cur:
            # Unqualified, as Alembic looks for its version table (the search_path).
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL, (" + stamp.EXISTS_SQL + ")",
                        {"t": stamp.STAMP_TABLE})
            versioned, stamped = cur.fetchone()
            if not (versioned and stamped):
                return None
            cur.execute("SELECT version_num FROM alembic_version")
            revisions = [str(r[0]) for r in cur.fetchall()]
            cur.execute(stamp.ROW_SQL)
            found = cur.fetchone()
            cur.execute(fingerprint.CATALOG_SQL)
            catalog = str(cur.fetchone()[0])
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()
    return revisions, (dict(found[0]) if found and found[0] else None), catalog
