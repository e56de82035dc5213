"""The scenarios, in the order they run (and appear in the reports)."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Context
from bench.model import ScenarioResult
from bench.scenarios import (
    crash,
    explain,
    footprint,
    graceful,
    instrumentation,
    relay,
    reload,
    startup,
    throughput,
    warmup,
)

REGISTRY: dict[str, Callable[[Context], ScenarioResult]] = {
    startup.KEY: startup.run,
    crash.KEY: crash.run,
    graceful.KEY: graceful.run,
    reload.KEY: reload.run,
    relay.KEY: relay.run,
    throughput.KEY: throughput.run,
    footprint.KEY: footprint.run,
    warmup.KEY: warmup.run,
    instrumentation.KEY: instrumentation.run,
    explain.KEY: explain.run,
}
