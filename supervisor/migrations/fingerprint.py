"""Fingerprints of what the drift check compares: the code on one side, the schema on the other.

The comparison of the models with the database is the migrate phase's costliest part
(importing the models, Alembic's autogenerate machinery, reflection).  Its result only
depends on the code (``env.py``, the revisions, the models, the SQLAlchemy and Alembic
versions) and on the schema as PostgreSQL's catalog describes it, so a hash of each is
remembered with the revision after a comparison that found no difference, and a start
whose hashes are the same skips it.  Nothing here imports SQLAlchemy or Alembic: the
quick check of a restart (``quickcheck``) fingerprints without loading them.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

# Directories too big to be the models' (a prepend_sys_path of "." would hash a whole tree).
_SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "site-packages", "__pycache__"}
_MAX_FILES = 2000
# Their __init__.py holds __version__: hashing it stands for the version without importing.
_LIBRARIES = ("sqlalchemy", "alembic")

# What the comparison looks at, as PostgreSQL's catalog describes it, for the current
# schema (the supervisor's jarlpm_* tables excepted): tables and views, columns with
# their types, nullability, defaults, identity and comments, constraints, indexes, enums.
CATALOG_SQL = r"""
SELECT md5(coalesce(string_agg(item, E'\n' ORDER BY item), '')) FROM (
  SELECT format('rel %s %s %s', c.relname, c.relkind, obj_description(c.oid, 'pg_class')) AS item
    FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
     AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('col %s.%s %s %s %s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                col_description(c.oid, a.attnum))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('con %s %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
   WHERE k.connamespace = current_schema()::regnamespace AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relname NOT LIKE 'jarlpm\_%'
  UNION ALL
  SELECT format('enum %s %s %s', t.typname, e.enumsortorder, e.enumlabel)
    FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
   WHERE t.typnamespace = current_schema()::regnamespace
) AS catalog
"""


def compose(revision: str, code: str, catalog: str) -> str:
    """What the stamp remembers after a comparison found the models in step."""
    return f"{revision}:{code}:{catalog}"


def code_digest(script_dir: Path, sys_paths: Sequence[str]) -> str | None:
    """A hash of the code's side: the revisions and env.py, the models, the libraries' versions.

    The models live somewhere on alembic.ini's ``prepend_sys_path`` (backend/): every
    Python file there is hashed.  None when the tree is too large to hash cheaply, or a
    library cannot be found (then the comparison always runs).
    """
    digest = hashlib.sha256()
    for name in _LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            return None
        digest.update(f"\0{name}\0".encode())
        digest.update(Path(spec.origin).read_bytes())
    count = 0
    for number, root in enumerate([script_dir, *(Path(p) for p in sys_paths)]):
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root)
            if _SKIPPED_DIRS.intersection(relative.parts):
                continue
            count += 1
            if count > _MAX_FILES:
                return None
            # Relative names: replicas with the same code in other directories agree.
            digest.update(f"\0{number}/{relative}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}


def code_roots(ini: Path) -> tuple[Path, list[str]] | None:
    """The script directory and ``prepend_sys_path`` of ``ini``, read as Alembic reads them.

    Only the plain form: an ``[alembic]`` section, a file-system ``script_location``
    and a ``path_separator``.  Anything else is None, and the caller lets Alembic
    itself decide; a reading that differed from Alembic's would only give another
    digest, which matches nothing remembered.
    """
    parser = configparser.ConfigParser(defaults={"here": os.path.abspath(os.path.dirname(ini))})
    try:
        if not parser.read(ini) or not parser.has_section("alembic"):
            return None
        location = parser.get("alembic", "script_location", fallback=None)
        prepend = parser.get("alembic", "prepend_sys_path", fallback=None)
        separator = parser.get("alembic", "path_separator", fallback=None)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if not location or (":" in location and not os.path.isabs(location)):
        return None  # unset, or a package resource ("pkg:migrations")
    if not prepend:
        return ini.parent / location, []
    if separator not in _SEPARATORS:
        return None  # the deprecated splitting on spaces, commas and colons
    return ini.parent / location, [p.strip() for p in prepend.split(_SEPARATORS[separator]) if p]
