"""The one stream of JSON log lines: the supervisor's events and its children's output.

``logsetup`` configures structlog and owns the sink (a bounded queue drained by one
writer thread, so a slow reader never stalls the loop); ``relay`` turns a child's
stdout/stderr into ordered events stamped with their source and pid; ``messages``
gives every line its human ``message``; ``journal`` the syslog priority prefix when
stdout is systemd's journal.

Runs in: the supervisor and the phase process.  May import: ``contract``, structlog.
"""
