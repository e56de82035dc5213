"""``wrk``, the HTTP load generator of the throughput figure: finding or installing it, running it, reading it.

wrk is C and event-driven, so on 2 shared cores it takes far less CPU from the
server than Python clients would.  Debian packages it; the bench installs it
with apt-get when it is missing and runs as root, and otherwise the row reads
"not available" with the reason.  Parsing its report is pure (unit-tested).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

INSTALL_TIMEOUT_S = 600


class WrkUnavailable(RuntimeError):
    """wrk is missing and could not be installed; the throughput row says why."""


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    # The package lists may be missing or stale on a fresh machine: update once, then retry.
    for steps in ([install], [["apt-get", "update"], install]):
        for step in steps:
            result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            if result.returncode != 0:
                break
        else:
            return
    raise WrkUnavailable(f"apt-get install wrk failed: {result.stderr.strip()[-300:]}")


def ensure(install: bool) -> str:
    """The path of ``wrk``, installing Debian's package when allowed, missing, and root."""
    found = shutil.which("wrk")
    if found:
        return found
    if not install:
        raise WrkUnavailable("wrk is not installed (this run does not install it: apt-get install wrk)")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise WrkUnavailable("wrk is not installed and the bench cannot install it (needs root and apt-get): "
                             "apt-get install wrk")
    _apt_install()
    found = shutil.which("wrk")
    if not found:
        raise WrkUnavailable("apt-get installed wrk but it is not on PATH")
    return found


def version(path: str) -> str:
    """``wrk -v``'s version (it exits 1 after printing it)."""
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    text = (out.stdout or out.stderr).strip()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": keep the version.
    return text.splitlines()[0].split(" Copyright")[0] if text else "?"

@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    req_per_s: float
    non_2xx: int
    socket_errors: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def duration_ms(text: str) -> float:
    """wrk's ``452.00us``, ``1.23ms``, ``2.01s`` or ``1.00m`` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse(report: str) -> WrkResult:
    """Read wrk's text report (run with ``--latency``).  Raises ValueError if it has no totals."""
    totals = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", report, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s*([\d.]+)", report, re.MULTILINE)
    if not totals or not rate:
        raise ValueError(f"no totals in wrk's report:\n{report[-1000:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", report)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    percentiles = dict(re.findall(r"^\s*(50|99)(?:\.000)?%\s+(\S+)", report, re.MULTILINE))
    return WrkResult(
        requests=int(totals.group(1)),
        seconds=duration_ms(totals.group(2) + totals.group(3)) / 1000,
        req_per_s=float(rate.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        latency_p50_ms=duration_ms(percentiles["50"]) if "50" in percentiles else None,
        latency_p99_ms=duration_ms(percentiles["99"]) if "99" in percentiles else None,
    )


def run(path: str, url: str, seconds: float, connections: int, threads: int) -> WrkResult:
    """Load ``url`` for ``seconds`` (keep-alive connections) and read the report."""
    argv = [path, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
            "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return parse(out.stdout)
