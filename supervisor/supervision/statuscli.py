"""``jarlpm status``: print the running supervisor's snapshot for people or, with --json, scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import status


def render(snapshot: dict[str, Any]) -> str:
    lines = [
        f"state: {snapshot.get('state')}"
        + (f" (phase {snapshot['phase']})" if snapshot.get("phase") else "")
        + f"   ready: {'yes' if snapshot.get('ready') else 'no'}   "
        f"listen: {snapshot.get('listen')}   uptime: {snapshot.get('uptime_s')}s   "
        f"reloads: {snapshot.get('reloads', 0)}",
        f"{'worker':>6}  {'pid':>8}  {'ready':>5}  {'uptime':>9}  {'restarts':>8}  last exit",
    ]
    for w in snapshot.get("workers", []):
        last = w.get("last_exit") or {}
        last_text = (f"pid {last.get('pid')} " + (f"signal {last['signal']}" if "signal" in last
                     else f"code {last.get('exit_code')}")) if last else "-"
        uptime = f"{w['uptime_s']}s" if w.get("uptime_s") is not None else "-"
        lines.append(f"{w.get('worker'):>6}  {w.get('pid') or '-':>8}  "
                     f"{_ready_text(w):>5}  {uptime:>9}  {w.get('restarts', 0):>8}  "
                     f"{last_text}")
    if snapshot.get("standby"):
        lines.append(f"standby: pid {snapshot['standby']} (app imported, waiting to replace a process)")
    if snapshot.get("fork_server"):
        lines.append(f"fork server: pid {snapshot['fork_server']} (app imported; server processes are forked from it)")
    return "\n".join(lines)


def _ready_text(worker: dict[str, Any]) -> str:
    # A ready process whose heartbeats stopped is not answering now (issue #16): say so.
    if worker.get("ready") and worker.get("responsive") is False:
        return "stall"
    return "yes" if worker.get("ready") else "no"


def main(as_json: bool) -> int:
    path = status.socket_path()
    try:
        snapshot = status.query(path)
    except (OSError, ValueError) as exc:
        print(f"jarlpm status: no running supervisor answers on {path} ({exc}); "
              "set JARLPM_STATE_DIR to the supervisor's, or start it", file=sys.stderr)
        return int(ExitCode.UNAVAILABLE)
    print(json.dumps(snapshot, indent=2) if as_json else render(snapshot))
    return int(ExitCode.OK)
