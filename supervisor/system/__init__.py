"""What every process of ours uses from the operating system, with no policy of its own.

``signals`` (handlers only record; a self-pipe wakes the loop), ``reaper`` (the
process tree from /proc, PID 1 and subreaper duties), ``notify`` (systemd's
sd_notify without a library), ``backoff`` (capped exponential backoff with jitter), ``memory`` (a process's
resident memory from /proc), ``parentdeath`` (a child that
ends when its parent dies, even by SIGKILL), ``cgroups`` (this run's cgroup v2
directory, a leaf per server process, killed whole; ``cgrouppath`` is its pure part:
where our cgroup is, from /proc's text, and how ours are named).

Runs in: the supervisor, the phase process, server processes.  May import:
``contract`` and the standard library only.
"""
