"""``jarlpm explain``: a log of the supervisor's JSON lines read back as incidents and a root cause.

reader (lines → events) → incidents (events → incidents, per supervisor) →
verdict (incidents → root cause and fix) → render (text or JSON); cli wires them.
"""
