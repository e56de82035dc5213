"""What a scenario hands back: figures (rows) with medians, ratios and targets, plus the raw runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
NOT_AVAILABLE = "not available"
ERROR = "error"


@dataclass
class Row:
    """One figure: the supervisor's median beside the baselines', and the target it is held to.

    ``subject`` is the contender the figure is about (the Supervisor column), usually
    the supervisor itself; ``supervisor (standby)`` for the fast-replacement rows.
    """

    figure: str
    unit: str
    values: dict[str, float | None]
    ratio: float | None = None
    baseline: str | None = None
    target: str | None = None
    passed: bool | None = None
    note: str = ""
    subject: str = "supervisor"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    key: str
    title: str
    status: str = OK
    rows: list[Row] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [row.as_dict() for row in self.rows]
        return data
