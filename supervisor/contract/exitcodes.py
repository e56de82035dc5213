"""Every exit code the supervisor can end with (sysexits.h), and the error that carries one."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes; systemd units and orchestrators branch on these."""

    OK = 0  # stopped on request (SIGTERM, SIGINT, SIGQUIT)
    USAGE = 64  # command-line usage error
    DATAERR = 65  # migrations failed, several heads, models out of step
    UNAVAILABLE = 69  # database not reachable within DB_WAIT_TIMEOUT
    SOFTWARE = 70  # the server kept crashing (or an internal error)
    TEMPFAIL = 75  # timed out waiting for another replica's migration lock, or for a free connection slot
    NOPERM = 77  # database refused the credentials or the permission
    CONFIG = 78  # invalid configuration


class SupervisorError(Exception):
    """A failure with a known exit code and a hint saying what to do about it.

    Phases raise it; only ``main`` turns it into an exit status, like click's
    ``ClickException``.  ``fields`` are extra keys for the failure event.
    """

    def __init__(
        self,
        message: str,
        exit_code: ExitCode,
        hint: str,
        **fields: object,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
        self.fields = fields
        self.logged = False  # set once its phase.failed event has been written


class StopRequested(Exception):
    """A stop signal arrived while a phase was running; the supervisor exits 0."""

    def __init__(self, signame: str) -> None:
        super().__init__(f"stop requested by {signame}")
        self.signame = signame
