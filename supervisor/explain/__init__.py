"""``jarlpm explain``: a log of the supervisor's JSON lines read back as incidents and their root causes.

envelope (journald, Docker, kubectl, platform exports → our line) → reader (lines →
events) → incidents (events → incidents, per replica and supervisor) → causality
(which incidents are effects of which) → verdict (every independent root cause and
its fix) → coverage and render (how much was read; text or JSON); cli wires them.
"""
