"""Small formatters shared by the incident summaries and the renderers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def duration(seconds: float | None) -> str:
    """``3 ms``, ``1.2 s``, ``4 min 05 s``, ``2 h 10 min``: what a person reads at a glance."""
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 100:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs:02d} s"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min"


def ms(value: Any) -> str:
    """A ``duration_ms`` field as text."""
    return duration(value / 1000) if isinstance(value, (int, float)) else "?"


def timestamp(ts: float | None) -> str:
    """UTC, millisecond precision, the same form as the log's own timestamps."""
    if ts is None:
        return "????-??-?? ??:??:??"
    try:
        when = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return "????-??-?? ??:??:??"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clip(text: Any, limit: int = 160) -> str:
    """One line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def counted(items: dict[str, int], limit: int = 3) -> str:
    """``exit 1 ×3, SIGKILL ×1`` from a counter, most frequent first."""
    ranked = sorted(items.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in ranked[:limit])
    if len(ranked) > limit:
        text += f", +{len(ranked) - limit} more"
    return text


def revision(rev: Any) -> str:
    return "empty" if rev in (None, "", []) else str(rev)
