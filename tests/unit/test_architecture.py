"""The architecture's invariants, as tests: which process may load what, and who may import whom."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from procs import REPO

HEAVY = ("sqlalchemy", "alembic", "psycopg2", "uvicorn", "fastapi")


def modules_loaded_by(*modules: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after importing ``modules`` in a fresh interpreter."""
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return set(json.loads(out))


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute), at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


class TestSupervisorProcessStaysLight:
    """The long-lived supervisor never loads the database stack or the web server."""

    @pytest.mark.parametrize("entry", ["supervisor.main", "supervisor.supervision.service",
                                       "supervisor.supervision.arbiter", "supervisor.logs.relay"])
    def test_entry_point_loads_nothing_heavy(self, entry: str) -> None:
        """Importing a supervisor entry point loads none of SQLAlchemy, Alembic, psycopg2, uvicorn."""
        assert modules_loaded_by(entry) & set(HEAVY) == set()

    def test_run_path_does_not_load_structlog(self) -> None:
        """``jarlpm run`` spawns its first server process without importing structlog (~90 ms, issue #17)."""
        assert "structlog" not in modules_loaded_by("supervisor.main", "supervisor.supervision.service")

    def test_run_path_does_not_load_explain_nor_package_metadata(self) -> None:
        """``jarlpm run``'s command line loads neither ``explain`` nor ``importlib.metadata`` (~70 ms, issue #17)."""
        code = ("import json, sys\nimport supervisor.main\nsupervisor.main.build_parser('run').parse_args(['run'])\n"
                "print(json.dumps(sorted(sys.modules)))")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert {"importlib.metadata", "supervisor.explain.cli"} & set(json.loads(out)) == set()

    def test_the_apps_import_does_not_load_alembic(self) -> None:
        """Importing the API (what a fork server does on every start's critical path) loads no Alembic (~0.1 s).

        Only the readiness probe needs the migration scripts; the lifespan reads them beside serving.
        """
        code = "import json, sys\nsys.path.insert(0, 'backend')\nimport server\nprint(json.dumps(sorted(sys.modules)))"
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert [name for name in json.loads(out) if name.split(".")[0] in ("alembic", "mako")] == []

    def test_contract_is_standard_library_only(self) -> None:
        """The contract modules, shared with the backend, load nothing outside the standard library."""
        contract = sorted(p.stem for p in (REPO / "supervisor" / "contract").glob("*.py") if p.stem != "__init__")
        loaded = modules_loaded_by(*[f"supervisor.contract.{name}" for name in contract])
        assert loaded & {*HEAVY, "structlog"} == set()


class TestImportDirections:
    """Who may import whom: the map in each package's docstring, enforced."""

    def test_backend_and_migrations_use_only_the_contract(self) -> None:
        """backend/ and alembic/ import nothing of the supervisor but ``supervisor.contract``."""
        offenders = []
        for path in [*(REPO / "backend").rglob("*.py"), *(REPO / "alembic").rglob("*.py")]:
            for name in imported_names(path):
                if name.split(".")[0] == "supervisor" and not name.startswith("supervisor.contract"):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
        assert offenders == []

    def test_server_process_code_does_not_import_supervision(self) -> None:
        """Code inside a server process never imports the supervision loop's modules."""
        offenders = [f"{path.relative_to(REPO)}: {name}"
                     for path in (REPO / "supervisor" / "server").rglob("*.py")
                     for name in imported_names(path) if name.startswith("supervisor.supervision")]
        assert offenders == []

    def test_lower_layers_do_not_import_the_supervision_loop(self) -> None:
        """``system``, ``logs``, ``database``, ``migrations`` and ``phases`` never import ``supervision``.

        The phase process's end (``supervision.phase_process``) imports ``phases``, not the reverse.
        """
        lower = [p for pkg in ("system", "logs", "database", "migrations")
                 for p in (REPO / "supervisor" / pkg).rglob("*.py")] + [REPO / "supervisor" / "phases.py"]
        offenders = [f"{path.relative_to(REPO)}: {name}" for path in lower
                     for name in imported_names(path) if name.startswith("supervisor.supervision")]
        assert offenders == []

    def test_contract_imports_only_the_contract(self) -> None:
        """The contract depends on nothing else of the supervisor."""
        offenders = [f"{path.relative_to(REPO)}: {name}"
                     for path in (REPO / "supervisor" / "contract").rglob("*.py")
                     for name in imported_names(path)
                     if name.startswith("supervisor.") and not name.startswith("supervisor.contract")]
        assert offenders == []

    def test_explain_stands_alone(self) -> None:
        """``jarlpm explain`` reads logs with nothing of the supervisor but the contract."""
        offenders = [f"{path.relative_to(REPO)}: {name}"
                     for path in (REPO / "supervisor" / "explain").rglob("*.py")
                     for name in imported_names(path)
                     if name.startswith("supervisor.") and not name.startswith(("supervisor.explain",
                                                                                "supervisor.contract"))]
        assert offenders == []


class TestPackageMaps:
    """Every package's ``__init__`` docstring is its map: what is in it and which process runs it."""

    @pytest.mark.parametrize("package", sorted(p.parent.name for p in (REPO / "supervisor").glob("*/__init__.py")))
    def test_package_has_a_map(self, package: str) -> None:
        """The docstring names every module of the package."""
        init = REPO / "supervisor" / package / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        modules = sorted(p.stem for p in init.parent.glob("*.py") if not p.stem.startswith("_"))
        assert doc, f"supervisor/{package}/__init__.py has no docstring"
        assert [m for m in modules if m not in doc] == []


def literal_lines(path: Path, words: frozenset[str]) -> list[int]:
    """Lines of ``path`` where one of ``words`` is spelled as a literal (str or bytes).

    Dictionary keys, subscripts, ``.get()`` keys and f-string text are not counted (the
    status snapshot has a ``"ready"`` field, which is not the control message), nor the
    values of a module's named constants (``READY = "ready"`` as a metrics label is
    another vocabulary, defined once in its own module).
    """
    tree = ast.parse(path.read_text(), str(path))
    exempt: set[int] = set()
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and all(
                isinstance(n, ast.Name) and n.id.isupper()
                for target in statement.targets for n in ast.walk(target) if isinstance(n, ast.Name)):
            exempt.update(id(inner) for inner in ast.walk(statement.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            exempt.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            exempt.add(id(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            exempt.update(id(arg) for arg in node.args[:1])
        elif isinstance(node, ast.JoinedStr):
            exempt.update(id(inner) for inner in ast.walk(node))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in exempt:
            text = node.value.decode(errors="replace") if isinstance(node.value, bytes) else node.value
            if isinstance(text, str) and text in words:
                lines.append(node.lineno)
    return lines


class TestControlChannelIsWrittenOnce:
    """The supervisor↔server messages come from ``supervisor.contract.control`` on both ends."""

    def test_no_end_spells_a_message_itself(self) -> None:
        """No module of ``server`` or ``supervision`` writes "go", "ready", "drain"… as a literal."""
        from supervisor.contract import control

        offenders = [f"{path.relative_to(REPO)}:{line}"
                     for package in ("server", "supervision")
                     for path in sorted((REPO / "supervisor" / package).rglob("*.py"))
                     for line in literal_lines(path, control.MESSAGES)]
        assert offenders == []

    @pytest.mark.parametrize("module", ["supervisor/server/worker.py", "supervisor/supervision/server_process.py",
                                        "supervisor/supervision/arbiter.py"])
    def test_both_ends_import_the_contract(self, module: str) -> None:
        """The worker, the process handle and the arbiter all import ``contract.control``."""
        names = imported_names(REPO / module)
        assert "supervisor.contract.control" in names


class TestPoolDiagnosesAreWrittenOnce:
    """The diagnosis names come from ``supervisor.contract.diagnoses`` in the backend and in explain."""

    def test_no_module_spells_a_diagnosis_itself(self) -> None:
        """Neither ``backend/jarlpm/pool`` nor ``supervisor/explain`` writes "lock_contention"… as a literal."""
        from supervisor.contract import diagnoses

        offenders = [f"{path.relative_to(REPO)}:{line}"
                     for folder in (REPO / "backend" / "jarlpm" / "pool", REPO / "supervisor" / "explain")
                     for path in sorted(folder.rglob("*.py"))
                     for line in literal_lines(path, frozenset(diagnoses.BY_SPECIFICITY))]
        assert offenders == []


class TestSmallModules:
    """Modules stay small enough to read in one sitting: none of the supervisor or backend over ~300 lines."""

    LIMIT = 340  # ~300: the arbiter, the one loop, sits just above it

    def test_no_module_over_the_limit(self) -> None:
        """Every module of supervisor/ and backend/ has at most LIMIT lines (split by concern beyond)."""
        sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines())
                 for root in ("supervisor", "backend") for p in (REPO / root).rglob("*.py")}
        assert {name: n for name, n in sizes.items() if n > self.LIMIT} == {}
