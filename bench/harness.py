"""Context managers the scenarios share: a fresh database, a contender that is always stopped."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import contenders, servers
from bench.context import Context
from bench.pg import BenchDatabase


@contextlib.contextmanager
def fresh_database(ctx: Context, template: str | None = None) -> Iterator[str]:
    """A database cloned from ``template`` (default: at head, seeded, verified); dropped afterwards."""
    db: BenchDatabase = ctx.db
    name, url = db.fresh(template or ctx.template)
    try:
        yield url
    finally:
        db.drop(name)


Builder = Callable[[int, str, Path], servers.ServerSpec]


def contender(ctx: Context, label: str, app: str = "server:app", app_dir: str = "backend",
              **extra: str) -> Builder:
    """A builder (port, database URL, run dir) -> spec for one of the contenders, serving ``app``."""
    def build(port: int, url: str, run_dir: Path) -> servers.ServerSpec:
        return contenders.spec(label, port, url, run_dir, app, app_dir, extra)
    return build


PORT_ATTEMPTS = 3


@contextlib.contextmanager
def launched(ctx: Context, build: Builder, url: str, name: str, capture: bool = False,
             ready_path: str | None = "/api/health") -> Iterator[servers.Server]:
    """Start the contender ``build`` makes on a free port and wait for its first 200 on ``ready_path``
    (``server.ready_s``); stop its whole tree on the way out.  A port someone else took in between
    is retried on another port."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        run_dir = ctx.run_dir(name)
        spec = build(servers.pick_port(), url, run_dir)
        server = servers.Server(spec, None if capture else run_dir / "output.log", capture=capture)
        try:
            if ready_path is not None:
                server.ready_s = server.wait_http(ready_path)
        except servers.PortTaken:
            server.stop()
            if attempt == PORT_ATTEMPTS:
                raise
            ctx.progress(f"{name}: port {spec.port} was taken, retrying on another")
            continue
        except BaseException:
            server.stop()
            raise
        break
    try:
        yield server
    finally:
        server.stop()
        _check_stop(ctx, name, server)


def _check_stop(ctx: Context, name: str, server: servers.Server) -> None:
    """Record a supervisor stop that escalated: the bench sends one SIGTERM, so a second came from elsewhere."""
    if contenders.is_supervisor(server.spec.label) and server.log_path is not None:
        if any(e.get("event") == "supervisor.stop_escalated" for e in server.events()):
            ctx.anomaly(f"{name}: supervisor.stop_escalated (a second stop signal the bench did not send)")


