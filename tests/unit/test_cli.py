"""The `jarlpm` command line: help for every command, usage errors exit 64, the version."""

from __future__ import annotations

import subprocess
import sys

import pytest
from procs import REPO

COMMANDS = [["run"], ["check"], ["status"], ["explain"], ["migrate"], ["migrate", "upgrade"],
            ["migrate", "downgrade"], ["migrate", "current"], ["migrate", "history"], ["migrate", "check"],
            ["migrate", "revision"]]


def jarlpm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


class TestHelp:
    """Every command and action answers --help with exit 0."""

    @pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
    def test_help(self, command: list[str]) -> None:
        """`jarlpm ... --help` describes the command."""
        result = jarlpm(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: jarlpm" in result.stdout

    def test_top_level_lists_every_command(self) -> None:
        """`jarlpm --help` lists run, check, status, migrate and explain."""
        out = jarlpm("--help").stdout
        for name in ("run", "check", "status", "migrate", "explain"):
            assert f"    {name}" in out


class TestUsage:
    """A wrong command line exits 64 (EX_USAGE), never argparse's 2."""

    @pytest.mark.parametrize("args", [[], ["bogus"], ["run", "--nope"], ["migrate"], ["migrate", "sideways"],
                                      ["explain", "--since", "not-a-time"]], ids=str)
    def test_usage_errors(self, args: list[str]) -> None:
        """Bad arguments: exit 64 with the usage on stderr."""
        result = jarlpm(*args)
        assert result.returncode == 64, (result.returncode, result.stderr)
        assert "usage:" in result.stderr

    def test_version(self) -> None:
        """`jarlpm --version` prints the version."""
        result = jarlpm("--version")
        assert result.returncode == 0 and result.stdout.startswith("jarlpm ")
