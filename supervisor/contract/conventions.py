"""Variables people bring from other servers, read beside ``config``'s own.

``WEB_CONCURRENCY`` (uvicorn, gunicorn, Heroku, Railway set or read it) stands in
for ``WORKERS`` when that is unset; ``METRICS_PORT``/``METRICS_HOST`` say where the
supervisor serves Prometheus metrics; ``command_log_format`` lets an operator
command print for people on a terminal and JSON for a pipe.  Kept apart from
``config`` so that each rule is in one small place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Protocol


class ProblemReader(Protocol):
    """What ``config``'s reader offers: raw values, validated integers, a problem list."""

    def raw(self, name: str) -> str | None: ...

    def integer(self, name: str, default: int, low: int, high: int) -> int: ...

    def problem(self, variable: str, problem: str, expected: str) -> None: ...


MAX_WORKERS = 64

# name -> default, as the README's environment table shows it.
KNOWN = {
    "WEB_CONCURRENCY": "unset (WORKERS wins)",
    "METRICS_PORT": "empty (off)",
    "METRICS_HOST": "= HOST",
}


def workers(reader: ProblemReader) -> int:
    """``WORKERS``, else ``WEB_CONCURRENCY``, else 1; either is validated the same way."""
    name = "WORKERS" if reader.raw("WORKERS") is not None or reader.raw("WEB_CONCURRENCY") is None \
        else "WEB_CONCURRENCY"
    return reader.integer(name, 1, 1, MAX_WORKERS)


def metrics_port(reader: ProblemReader, port: int) -> int | None:
    """``METRICS_PORT`` or None (metrics off); it cannot be the server's own ``PORT``."""
    if reader.raw("METRICS_PORT") is None:
        return None
    value = reader.integer("METRICS_PORT", 0, 1, 65535)
    if value == port:
        reader.problem("METRICS_PORT", f"is {value}, the same as PORT",
                       "a port other than PORT, such as 9091")
        return None
    return value or None


def metrics_host(reader: ProblemReader, host: str) -> str:
    """``METRICS_HOST``, by default the server's ``HOST``."""
    value = reader.raw("METRICS_HOST")
    if value is None:
        return host
    value = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not value.replace("-", "").replace(".", "").isalnum():
            reader.problem("METRICS_HOST", f"is {value!r}, not an address or host name",
                           "an address such as 127.0.0.1 or 0.0.0.0, or a host name")
            return host
    return value


def command_log_format(env: Mapping[str, str], interactive: bool) -> str:
    """``LOG_FORMAT`` when set; else ``console`` for a person at a terminal, ``json`` for a pipe."""
    value = (env.get("LOG_FORMAT") or "").strip().lower()
    if value in ("json", "console"):
        return value
    return "console" if interactive else "json"
