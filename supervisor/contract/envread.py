"""Reading environment variables by their rules (``variables``), every problem collected at once.

The supervisor's ``config.load_settings`` reads the whole environment through a
``Reader``; the backend and ``alembic/env.py`` read the variables they use through
``read``: the same values, defaults and words (``DB_POOL_TIMEOUT is 0.05, out of
range; expected a number of seconds from 0.1 to 3600``) wherever a value is read.
Pure: the only effect is reading ``*_FILE`` secrets (injectable).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.contract import dburl
from supervisor.contract.variables import (
    FALSE,
    INTERNAL,
    KNOWN_VARIABLES,
    PREFIXES,
    RULES,
    TRUE,
    Flag,
    OneOf,
    Seconds,
    Whole,
)


@dataclass(frozen=True)
class Problem:
    """One invalid variable: ``variable`` ``problem``; expected ``expected``."""

    variable: str
    problem: str
    expected: str

    def as_dict(self) -> dict[str, str]:
        return {"variable": self.variable, "problem": self.problem, "expected": self.expected}

    def __str__(self) -> str:
        return f"{self.variable} {self.problem}; expected {self.expected}"


class ConfigError(Exception):
    """All the configuration problems found, reported together."""

    def __init__(self, problems: list[Problem], unknown: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.unknown = unknown


def read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


# -- reading -----------------------------------------------------------------------------
class Reader:
    """Collects problems while reading variables, so every one is reported at once."""

    def __init__(self, env: Mapping[str, str], read_file: Callable[[str], str] = read_text) -> None:
        self.env = env
        self.read_file = read_file
        self.problems: list[Problem] = []
        # Only picks a default (DB_LEAK_THRESHOLD's, RELOAD's); JARLPM_ENV itself is checked when read.
        self.development = (self.raw("JARLPM_ENV") or "").lower() == "development"

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def value(self, name: str) -> Any:
        """``name`` read by its rule in ``RULES``; its default (and a problem noted) when invalid."""
        rule = RULES[name]
        if isinstance(rule, Whole):
            return self.integer(name, rule.default, rule.low, rule.high)
        if isinstance(rule, Seconds):
            default = rule.development if self.development and rule.development is not None else rule.default
            return self.seconds(name, default, rule.low, rule.high)
        if isinstance(rule, Flag):
            flag = rule.development if self.development and rule.development is not None else rule.default
            return self.boolean(name, flag)
        if isinstance(rule, OneOf):
            return self.choice(name, rule.default, rule.choices)
        return self.secret_url(name)

    def _number(
        self, name: str, default: float, convert: Callable[[str], Any], kind: str,
        low: float, high: float, expected: str,
    ) -> Any:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = convert(text)
        except ValueError:
            self.problems.append(Problem(name, f"is {text!r}, which is not {kind}", expected))
            return default
        if not (low <= value <= high):
            self.problems.append(Problem(name, f"is {text}, out of range", expected))
            return default
        return value

    def problem(self, variable: str, problem: str, expected: str) -> None:
        """Record a problem found by a rule that spans variables (``config``, ``conventions``)."""
        self.problems.append(Problem(variable, problem, expected))

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        expected = f"a whole number from {low} to {high}"
        return int(self._number(name, default, int, "a whole number", low, high, expected))

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        expected = f"a number of seconds from {low:g} to {high:g}"
        return float(self._number(name, default, float, "a number", low, high, expected))

    def boolean(self, name: str, default: bool) -> bool:
        text = self.raw(name)
        if text is None:
            return default
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        self.problems.append(Problem(name, f"is {text!r}, not a boolean", "true or false"))
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        text = self.raw(name)
        if text is None:
            return default
        if text.lower() not in choices:
            self.problems.append(Problem(name, f"is {text!r}", "one of " + ", ".join(choices)))
            return default
        return text.lower()

    def secret_url(self, name: str) -> str | None:
        """A database URL from ``NAME`` or ``NAME_FILE`` (container secrets), validated."""
        direct, file_name = self.raw(name), self.raw(name + "_FILE")
        if direct and file_name:
            self.problems.append(
                Problem(name, f"and {name}_FILE are both set", f"only one of {name} or {name}_FILE")
            )
            return None
        value = direct
        if file_name:
            value = self._read_secret_file(name, file_name)
            if value is None:
                return None
        if value is None:
            return None
        dburl.register_url_secrets(value)
        try:
            dburl.validate(value)
        except dburl.InvalidDatabaseUrl as exc:
            shown = name + ("_FILE's content" if file_name else "")
            self.problems.append(Problem(shown, str(exc).split(";")[0], str(exc).split("; expected ")[-1]))
            return None
        return value

    def _read_secret_file(self, name: str, file_name: str) -> str | None:
        try:
            value = self.read_file(file_name).strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.problems.append(
                Problem(f"{name}_FILE", f"names {file_name!r}, which cannot be read ({reason})",
                        "the path of a readable file holding the URL")
            )
            return None
        except UnicodeDecodeError:
            self.problems.append(
                Problem(f"{name}_FILE", f"names {file_name!r}, which is not UTF-8 text",
                        "a text file holding the URL")
            )
            return None
        if not value:
            self.problems.append(
                Problem(f"{name}_FILE", f"names {file_name!r}, which is empty",
                        "a file holding postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
            )
            return None
        return value


def read(env: Mapping[str, str], names: Iterable[str], read_file: Callable[[str], str] = read_text) -> dict[str, Any]:
    """The named variables by their rules, or ``ConfigError`` listing every problem among them.

    For readers of a part of the environment (the backend, ``alembic/env.py``): the
    same values, defaults and words as the supervisor's ``load_settings``.
    """
    reader = Reader(env, read_file)
    values = {name: reader.value(name) for name in names}
    if reader.problems:
        raise ConfigError(reader.problems)
    return values


def unknown_variable_warnings(env: Mapping[str, str]) -> tuple[dict[str, str], ...]:
    """'Did you mean' warnings for DB_*/JARLPM_* names nobody reads (typos lose settings silently)."""
    known = set(KNOWN_VARIABLES) | INTERNAL
    found = []
    for name in sorted(env):
        if name in known or not name.startswith(PREFIXES):
            continue
        if name.startswith("DATABASE_") and not name.startswith(("DATABASE_URL", "DATABASE_DIRECT")):
            continue
        close = difflib.get_close_matches(name, list(KNOWN_VARIABLES), n=1, cutoff=0.7)
        found.append({"variable": name, "suggestion": close[0] if close else ""})
    return tuple(found)
