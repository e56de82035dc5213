"""Database URLs from secret files handed to child processes by descriptor, never by environment.

Anything that dumps an environment (a crash reporter, ``/proc/PID/environ``, a
debugging ``env`` in a shell the app spawns) would otherwise carry the password of
a URL the operator deliberately kept in a secret file (``DATABASE_URL_FILE``).  Such
a URL is written once into an anonymous in-memory file (``memfd_create``; an
unlinked temporary file where that is refused) that the supervisor keeps open;
children inherit the descriptor and read ``DATABASE_URL_FILE=/proc/self/fd/N``: the
``*_FILE`` convention that the operator's choice of a secret file already asks the
app to honour (the supervisor, the backend and Alembic's env.py do).  A URL given
in the environment (``DATABASE_URL``), or development's embedded one, stays a
variable: apps that read ``DATABASE_URL`` keep working.
"""

from __future__ import annotations

import os
import tempfile

from supervisor.contract.config import Settings

# variable -> the settings field that holds its validated value
_URL_VARIABLES = {"DATABASE_URL": "database_url", "DATABASE_DIRECT_URL": "database_direct_url"}

_descriptors: dict[str, int] = {}  # URL -> the descriptor holding it, for the supervisor's life


def _descriptor_for(url: str) -> int:
    """A read-only-in-practice descriptor whose content is ``url`` (created once per URL)."""
    if url in _descriptors:
        return _descriptors[url]
    try:
        fd = os.memfd_create("jarlpm-database-url", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd (old kernel, a seccomp filter): a file with no name
        fd = os.dup(tempfile.TemporaryFile().fileno())  # noqa: SIM115 (the descriptor is the point)
    os.write(fd, url.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    _descriptors[url] = fd
    return fd


def hand_over(env: dict[str, str], settings: Settings) -> None:
    """Put the validated URLs in a child's ``env``: by descriptor when they came from a file."""
    for variable, field in _URL_VARIABLES.items():
        from_file = bool(env.pop(f"{variable}_FILE", None))
        env.pop(variable, None)
        url = getattr(settings, field)
        if not url:
            continue
        if from_file:
            env[f"{variable}_FILE"] = f"/proc/self/fd/{_descriptor_for(url)}"
        else:
            env[variable] = url


def inherited_fds() -> tuple[int, ...]:
    """The descriptors every child must inherit (``pass_fds``) to read its URLs."""
    return tuple(_descriptors.values())
