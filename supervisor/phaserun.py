"""The database phases in a short-lived child process: ``python -m supervisor.phaserun PHASE...``.

The supervisor lives as long as the service; SQLAlchemy, Alembic, psycopg2 and the
models would stay in its memory for all that time (about 35 MB of its 60).  So the
phases that need them run here, log exactly as the supervisor would (source
``supervisor``, the supervisor's pid), and report through the exit status:
0 done, a documented exit code when a phase failed, ``INTERRUPTED`` after a stop.
"""

from __future__ import annotations

import os
import sys
import traceback

from . import config, dburl, logsetup
from .exitcodes import ExitCode, StopRequested, SupervisorError
from .notify import Notifier
from .phases import PhaseContext, PhaseRunner, database_phases
from .signals import SignalQueue

INTERRUPTED = 130  # internal: a stop request ended the phases (the supervisor exits 0)
SUPERVISOR_PID = "JARLPM_SUPERVISOR_PID"


def main(names: list[str]) -> int:
    fmt, level = config.log_settings_only(os.environ)
    logsetup.configure("json", level, pid=int(os.environ.get(SUPERVISOR_PID) or os.getppid()))
    log = logsetup.get_logger()
    signals = SignalQueue()
    signals.install()
    try:
        settings = config.load_settings(os.environ)
        dburl.register_url_secrets(settings.database_url)
        dburl.register_url_secrets(settings.database_direct_url)
        ctx = PhaseContext(settings=settings, signals=signals, log=log, notifier=Notifier(env={}))
        PhaseRunner(ctx).run_all(database_phases(names))
        code = int(ExitCode.OK)
    except SupervisorError as exc:  # already logged as phase.failed by the runner
        code = int(exc.exit_code)
    except StopRequested:
        code = INTERRUPTED
    except Exception as exc:  # the one broad guard of this process
        log.critical("supervisor.crashed", error=dburl.redact(repr(exc)),
                     traceback=dburl.redact(traceback.format_exc()),
                     hint="this is a bug in the supervisor: please report it with this event")
        code = int(ExitCode.SOFTWARE)
    logsetup.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
