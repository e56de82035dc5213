"""``jarlpm explain``: a log of the supervisor's JSON lines read back as incidents and a root cause.

reader (lines → events) → incidents (events → incidents, per supervisor) →
verdict (incidents → root cause and fix) → render (text or JSON); cli wires them.

``reader`` unwraps and parses lines (``fields`` types what it trusts); ``routing``
sends each event to the tracker of the supervisor that wrote it; ``incidents`` folds
events into incidents with the trackers ``supervision`` (one supervisor's life),
``lifecycle`` (starts, reloads, stops), ``children`` (deaths, restarts, hangs),
``database`` (outages, 5xx) and ``pool`` (pool episodes), into ``model``'s records;
``verdict`` picks the root cause with ``fixes`` (what to change) and ``stacks``
(code locations in dumps); ``render`` and ``fmt`` write it out.

Runs in: the ``jarlpm explain`` command (``python -m supervisor.explain``).  May
import: ``contract`` only; it reads logs of any version and needs no database.
"""
