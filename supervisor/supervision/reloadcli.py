"""``jarlpm reload``: ask the running supervisor to reload and wait for the outcome.

What ``ExecReload=`` runs: its exit status is the outcome's (0 once every server
process runs the new code, 65 for a failed migration, 70 when a new process could
not start, 75 when the supervisor is not serving or the deadline passed), 69 when
no supervisor answers.  Prints a sentence for people on a terminal, one JSON object
otherwise (``LOG_FORMAT`` decides when set).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from supervisor.contract.conventions import command_log_format
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import status

DEFAULT_TIMEOUT = 600.0  # a reload migrates first: as generous as the unit's start budget


def render(answer: dict[str, Any]) -> str:
    """One line for people, plus the hint when it failed."""
    result = answer.get("result")
    if result == "reloaded":
        pids = ", ".join(str(p) for p in answer.get("pids", []))
        return f"jarlpm reload: reloaded; every server process runs the new code (pids {pids})"
    reason = f" ({answer['reason']})" if answer.get("reason") else ""
    text = f"jarlpm reload: {result}{reason}: {answer.get('error')}"
    return text + (f"\n  hint: {answer['hint']}" if answer.get("hint") else "")


def main(timeout: float = DEFAULT_TIMEOUT) -> int:
    as_json = command_log_format(os.environ, sys.stdout.isatty()) == "json"
    path = status.socket_path()
    try:
        answer = status.request(status.RELOAD, path, timeout=timeout)
    except TimeoutError:
        answer = {"result": "timeout", "exit_code": int(ExitCode.TEMPFAIL),
                  "error": f"no outcome within {timeout:g} s; the reload may still be under way",
                  "hint": "see `jarlpm status` and the log; raise --timeout for long migrations"}
    except (OSError, ValueError) as exc:
        answer = {"result": "unavailable", "exit_code": int(ExitCode.UNAVAILABLE),
                  "error": f"no running supervisor answers on {path} ({exc})",
                  "hint": "set JARLPM_STATE_DIR to the supervisor's, or start it"}
    code = answer.get("exit_code")
    exit_code = code if isinstance(code, int) else int(ExitCode.SOFTWARE)
    out = sys.stdout if exit_code == 0 else sys.stderr
    print(json.dumps({**answer, "message": render(answer).splitlines()[0]}) if as_json else render(answer),
          file=out)
    return exit_code
