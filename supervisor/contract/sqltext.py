"""Statement text fit for a log line: literals replaced by ``?``, whitespace folded, length capped.

psycopg2 interpolates parameters on the client, so ``pg_stat_activity.query``
carries the request's values (titles, e-mail addresses, tokens).  The shape of
a statement is what finds the slow query or the blocker; the values are not
needed and must not land in the logs.
"""

from __future__ import annotations

import re

MAX_LENGTH = 200

_DOLLAR_QUOTED = re.compile(r"\$([A-Za-z_]\w*|)\$.*?\$\1\$", re.DOTALL)
_ESCAPE_STRING = re.compile(r"(?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'", re.DOTALL)
_STRING = re.compile(r"(?:(?<![\w$])(?:[BbXxNn]|[Uu]&))?'(?:[^']|'')*'")
_UNTERMINATED_STRING = re.compile(r"'[^']*$")
_NUMBER = re.compile(r"(?<![\w$.])(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w.])")
_VALUE_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_WHITESPACE = re.compile(r"\s+")


def normalise(query: str | None, limit: int = MAX_LENGTH) -> str | None:
    """``query`` with every literal as ``?`` (lists as ``(?, ...)``), on one line, at most ``limit`` chars.

    None stays None (the text is hidden: another role's session).  A statement
    cut by PostgreSQL's ``track_activity_query_size`` may end inside a string;
    the rest is dropped rather than printed.
    """
    if query is None:
        return None
    text = _DOLLAR_QUOTED.sub("?", query)
    text = _ESCAPE_STRING.sub("?", text)
    text = _STRING.sub("?", text)
    text = _UNTERMINATED_STRING.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _VALUE_LIST.sub("(?, ...)", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
