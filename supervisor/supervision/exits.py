"""What a server process's death leaves behind: its helpers killed, its exit logged, or a crash loop.

The arbiter decides what comes next (restart, recycle, reload, give up); this module
does the part that is the same for every death, so ``on_exit`` reads as the decision.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import server_process, stopping
from supervisor.supervision.restart_policy import GiveUp
from supervisor.supervision.server_process import ExitStatus, ServerProcess

if TYPE_CHECKING:
    from supervisor.supervision.arbiter import Arbiter


def record(arb: Arbiter, proc: ServerProcess, wait_status: int) -> ExitStatus:
    """Kill what the process left running, log ``child.exited`` and remember it for ``jarlpm status``."""
    exit_status = proc.mark_exited(wait_status)
    arb.metrics.process_exited(proc.pid)
    # Its cgroup holds every process it started, however it daemonised (env -i included);
    # the ones still in its own process group are not news: they die with it, unreported.
    in_cgroup = arb.cgroup.kill(proc.cgroup, unlisted_group=proc.pid) if arb.cgroup and proc.cgroup else []
    proc.kill_group()  # helpers the app started die with their server process
    escaped = proc.kill_escaped()  # and so do those that daemonised out of its group
    if in_cgroup or escaped:
        arb.log.warning("supervisor.orphans_killed", pids=sorted({*in_cgroup, *escaped}), of_pid=proc.pid,
                        worker=proc.slot, via="cgroup" if in_cgroup else "tag")
    for relay in proc.relays:
        relay.join(0.5)
    was_ready = proc.ready
    fields = exit_status.as_fields()
    hint = server_process.exit_hint(exit_status, was_ready, proc.stop_requested)
    if proc.unresponsive:
        hint = "killed by the supervisor after its event loop stalled (see child.unresponsive)"
    level = "info" if proc.stop_requested else "error"
    getattr(arb.log, level)(
        "child.exited", pid=proc.pid, worker=proc.slot, **fields,
        uptime_s=round(proc.uptime(), 3), was_ready=was_ready,
        stderr_tail=list(proc.stderr_tail)[-20:], hint=hint,
    )
    arb.last_exit[proc.slot] = {"pid": proc.pid, **fields, "at": time.time()}
    return exit_status


def give_up(arb: Arbiter, decision: GiveUp, last: ServerProcess) -> None:
    """Every process died before becoming ready: say why, stop everything, exit 70."""
    arb.log.error(
        "child.crash_loop", deaths=decision.deaths, limit=arb.settings.crash_loop_limit,
        last_pid=last.pid, stderr_tail=list(last.stderr_tail)[-20:],
        hint="every server process died before becoming ready: fix the error in stderr_tail "
             "(import error, bad JARLPM_APP, failing lifespan startup) and start again",
    )
    stopping.stop(arb, graceful=False, signame=None, exit_code=ExitCode.SOFTWARE)
