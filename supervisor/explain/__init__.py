"""``jarlpm explain``: a log of the supervisor's JSON lines read back as incidents and their root causes.

envelope (journald, Docker, kubectl, platform exports → our line) → reader (lines →
events) → incidents (events → incidents, per replica and supervisor) → causality
(which incidents are effects of which) → verdict (every independent root cause and
its fix) → coverage and render (how much was read; text or JSON); cli wires them.

``times`` parses stamps and ages; ``fields`` types what the reader trusts; ``routing``
sends each event to the tracker of the supervisor that wrote it; the trackers are
``supervision`` (one supervisor's life), ``lifecycle`` (starts, reloads, stops),
``children`` (deaths, restarts, hangs), ``database`` (outages, 5xx) and ``pool``
(pool episodes), recording into ``model``; ``candidates`` scores each incident as a
possible cause with ``fixes`` (what to change) and ``stacks`` (code locations in
dumps); ``fmt`` formats numbers and durations.

Runs in: the ``jarlpm explain`` command (``python -m supervisor.explain``).  May
import: ``contract`` only; it reads logs of any version and needs no database.
"""

# ``jarlpm --help``'s line for the command, which lists it without importing the rest.
SUMMARY = "read a log back as a timeline of incidents and their root causes"
