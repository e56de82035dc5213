"""docs/events.md is the catalogue of every log event: nothing emitted is missing, nothing listed is dead."""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

from procs import REPO

CATALOGUE = REPO / "docs" / "events.md"
SOURCES = [REPO / "supervisor", REPO / "backend", REPO / "scripts"]
NAMESPACES = ("phase", "child", "supervisor", "db", "migrate", "config", "server", "http", "check",
              "status", "log", "embedded_db", "start", "forkserver")
EVENT = re.compile(r"^({})\.[a-z0-9_]+(\.[a-z0-9_]+)*$".format("|".join(NAMESPACES)))
HEADING = re.compile(r"^#{2,4} `([a-z0-9_.]+)`", re.MULTILINE)


# ASGI message types look like events but are protocol constants.
PROTOCOL = ("http.response.", "http.request", "http.disconnect", "lifespan.")
READERS = (REPO / "supervisor" / "explain",)  # `jarlpm explain` reads events, it does not emit them


def _is_module_path(name: str) -> bool:
    """`supervisor.worker` is a module passed to `python -m`, not an event."""
    base = REPO / Path(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


@functools.cache
def emitted_events() -> dict[str, list[str]]:
    """Every event-shaped string literal in the product's code, with where it appears."""
    found: dict[str, list[str]] = {}
    for root in SOURCES:
        for path in sorted(root.rglob("*")):
            if any(reader in path.parents for reader in READERS):
                continue
            if path.suffix == ".py":
                tree = ast.parse(path.read_text(), filename=str(path))
                literals = [n.value for n in ast.walk(tree)
                            if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            elif path.suffix == ".sh":
                literals = re.findall(r'"event":"([a-z0-9_.]+)"', path.read_text())
            else:
                continue
            for literal in literals:
                if EVENT.match(literal) and not literal.startswith(PROTOCOL) and not _is_module_path(literal):
                    found.setdefault(literal, []).append(str(path.relative_to(REPO)))
    return found


def catalogued_events() -> set[str]:
    return set(HEADING.findall(CATALOGUE.read_text()))


def catalogue_entries() -> dict[str, str]:
    """Each documented event's section: from its heading to the next heading of any level."""
    text = CATALOGUE.read_text()
    sections = re.split(r"^#{2,4} `", text, flags=re.MULTILINE)[1:]
    return {section.split("`", 1)[0]: re.split(r"^#{1,4} ", section, flags=re.MULTILINE)[0]
            for section in sections}


JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)


class TestEventCatalogue:
    """Every event the code can emit is documented, and every documented event exists."""

    def test_every_emitted_event_is_documented(self) -> None:
        """An event in the code but not in docs/events.md fails, naming the file."""
        documented = catalogued_events()
        missing = {name: where for name, where in emitted_events().items() if name not in documented}
        assert not missing, f"add these events to docs/events.md: {missing}"

    def test_every_documented_event_is_emitted(self) -> None:
        """An event in docs/events.md that no code emits fails (renamed or removed)."""
        dead = catalogued_events() - set(emitted_events())
        assert not dead, f"docs/events.md lists events nothing emits: {sorted(dead)}"

    def test_each_entry_has_level_fields_example_and_action(self) -> None:
        """Each entry says its level, its fields, shows an example line and what to do."""
        incomplete = []
        for name, section in catalogue_entries().items():
            lowered = section.lower()
            if not ("level" in lowered and "fields" in lowered and "```json" in section
                    and ("what to do" in lowered or "action" in lowered)):
                incomplete.append(name)
        assert not incomplete, f"incomplete entries: {incomplete}"

    def test_each_example_is_a_line_of_its_event(self) -> None:
        """Each entry's examples parse as JSON objects naming that event, with level, source and pid."""
        wrong = []
        for name, section in catalogue_entries().items():
            for block in JSON_BLOCK.findall(section):
                try:
                    line = json.loads(block)
                except ValueError as exc:
                    wrong.append(f"{name}: not JSON ({exc})")
                    continue
                if not isinstance(line, dict) or line.get("event") != name:
                    wrong.append(f"{name}: example is another event")
                elif line.get("source") not in ("supervisor", "server") or not {"level", "pid"} <= set(line):
                    wrong.append(f"{name}: example lacks level, source or pid")
        assert not wrong, wrong

    def test_core_design_events_are_catalogued(self) -> None:
        """The events DESIGN.md names are all in the catalogue."""
        core = {"phase.started", "phase.completed", "phase.failed", "db.wait.retry", "migrate.lock_waiting",
                "migrate.applied", "migrate.up_to_date", "migrate.database_ahead", "child.spawned",
                "child.ready", "child.exited", "child.restarting", "child.crash_loop", "child.unresponsive",
                "supervisor.ready", "supervisor.reloading", "supervisor.stopping", "supervisor.stopped",
                "db.pool.budget", "db.pool.saturated", "db.pool.leak_suspected", "db.pool.exhausted"}
        assert core <= catalogued_events()
