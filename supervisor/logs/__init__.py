"""The one stream of JSON log lines: the supervisor's events and its children's output.

``logsetup`` configures the supervisor's logger (structlog's calling convention, without
importing structlog: start-up time); ``sink`` is the single writer (one FIFO, one thread:
nothing else ever waits for the reader; server lines over budget are dropped and
counted); ``relay`` turns a child's stdout/stderr into ordered events stamped with
their source and pid, and survives any output; ``lines`` cuts that output into
bounded lines in linear time; ``messages`` gives every line its human ``message``;
``journal`` the syslog priority prefix when stdout is systemd's journal.

Runs in: the supervisor and the phase process.  May import: ``contract``; structlog only for the console renderer.
"""
