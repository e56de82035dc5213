"""Times as logs and people write them: ISO 8601 stamps, epoch numbers of any unit, and ages like ``2h``.

Shared by the reader (the event's own ``timestamp``), the envelopes (journald's
``__REALTIME_TIMESTAMP``, Docker's ``time``, a platform's ``@timestamp``) and the
command line (``--since``/``--until``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# Epoch numbers are read by magnitude: journald counts microseconds, JavaScript milliseconds.
_MICROS_FROM = 1e14
_MILLIS_FROM = 1e11


class BadTime(ValueError):
    """A --since/--until value that is neither ISO 8601 nor a relative duration."""


_second_cache: dict[str, float | None] = {}


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch for an ISO 8601 string (naive means UTC), or None."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    # Fast path for the supervisor's own form, 2026-11-25T00:53:04.491Z: one parse per second of log.
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        base = _second_cache.get(text[:19], -1.0)
        if base == -1.0:
            if len(_second_cache) > 4096:
                _second_cache.clear()
            base = _second_cache[text[:19]] = _parse_iso(text[:19])
        millis = text[20:23]
        if base is not None and millis.isdigit():
            return base + int(millis) * 0.001
    return _parse_iso(text)


def _parse_iso(text: str) -> float | None:
    try:
        value = datetime.fromisoformat(text.replace(",", ".", 1))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def parse_epoch(value: object) -> float | None:
    """Seconds since the epoch from a number (or digits) in seconds, milliseconds or microseconds."""
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 24:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e18:
        return None
    if value >= _MICROS_FROM:
        return value / 1e6
    if value >= _MILLIS_FROM:
        return value / 1e3
    return float(value)


def parse_any(value: object) -> float | None:
    """An envelope's time, whatever its form: ISO 8601 first, then an epoch number."""
    return parse_timestamp(value) if isinstance(value, str) and "-" in value else parse_epoch(value)


def parse_when(text: str, now: datetime | None = None) -> float:
    """A --since/--until value: ISO 8601 (``2026-11-25T10:00Z``) or an age (``2h``, ``1h30m``) before now."""
    stripped = text.strip().lower().removesuffix(" ago").lstrip("-").strip()
    pieces = _RELATIVE.findall(stripped)
    if pieces and _RELATIVE.sub("", stripped).strip() == "":
        seconds = sum(float(amount) * _UNITS[unit.lower()] for amount, unit in pieces)
        return ((now or datetime.now(UTC)) - timedelta(seconds=seconds)).timestamp()
    value = parse_timestamp(text.strip())
    if value is None:
        raise BadTime(f"{text!r} is neither an ISO 8601 time (2026-11-25T10:00:00Z) "
                      "nor an age such as 30m, 2h or 1d")
    return value
