"""Recycling: server processes replaced after MAX_REQUESTS or above MAX_WORKER_MEMORY_MB, losing nothing."""

from __future__ import annotations

from loadgen import Load
from procs import APPS, Supervisor, base_env, running, wait_for

SAMPLE = {"JARLPM_APP": "sampleapp:app", "JARLPM_APP_DIR": str(APPS)}
MEMAPP = {"JARLPM_APP": "memapp:app", "JARLPM_APP_DIR": str(APPS)}


def serving_pids(sup: Supervisor) -> set[int]:
    return {e["pid"] for e in sup.find("child.ready")} - {e["pid"] for e in sup.find("child.exited")}


class TestMaxRequests:
    """A process that took MAX_REQUESTS (plus its jitter) is replaced, the new one ready first."""

    def test_one_worker_under_load_is_recycled_without_a_lost_request(self, app_db: str) -> None:
        """WORKERS=1, MAX_REQUESTS=20: several child.recycling, zero refused or failed requests."""
        env = base_env(app_db, WORKERS="1", MAX_REQUESTS="20", MAX_REQUESTS_JITTER="5",
                       CRASH_LOOP_LIMIT="1", **SAMPLE)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            with Load(sup.port, path="/pid", threads=4, max_seconds=60) as load:
                wait_for(lambda: len(sup.find("child.recycling")) >= 3, 60, "three recycles")
                result = load.stop()
            recycles = sup.find("child.recycling")
            assert {e["reason"] for e in recycles} == {"max_requests"}
            assert all(20 <= e["requests"] and 20 <= e["limit"] <= 25 for e in recycles)
            assert result.refused == 0 and result.failed == 0, result.errors[:5]
            assert len(result.pids) >= 3  # the requests were answered by successive processes
            assert not sup.find("child.restarting") and not sup.find("child.crash_loop")
            # The last one recycled drains once its replacement is ready: then one process remains.
            recycled = {r["pid"] for r in recycles}

            def recycled_exits() -> list[dict[str, object]] | None:
                exits = [e for e in sup.find("child.exited") if e["pid"] in recycled]
                return exits if len(exits) == len(recycled) else None

            exits = wait_for(recycled_exits, 30, "every recycled process to exit")
            assert all(e.get("exit_code") == 0 for e in exits)
            wait_for(lambda: len(serving_pids(sup)) == 1, 30, "one serving process")
            assert sup.proc.poll() is None


class TestMaxWorkerMemory:
    """Resident memory held above MAX_WORKER_MEMORY_MB gets the process replaced; again and again is a leak."""

    def test_a_growing_process_is_recycled_and_a_repeat_is_called_a_leak(self, app_db: str) -> None:
        """Each /grow past the limit: child.recycling (memory, rss_mb); the third: memory_leak_suspected."""
        env = base_env(app_db, WORKERS="1", MAX_WORKER_MEMORY_MB="150", **MEMAPP)
        with running(env) as sup:
            sup.wait_event("supervisor.ready", timeout=60)
            for n in range(1, 4):
                status, _, _ = sup.get("/grow?mb=200")
                assert status == 200
                wait_for(lambda n=n: len(sup.find("child.recycling")) >= n, 30, f"memory recycle {n}")
                wait_for(lambda n=n: len(sup.find("child.ready")) >= n + 1, 30, f"replacement {n} ready")
            recycles = sup.find("child.recycling")
            assert {e["reason"] for e in recycles} == {"memory"}
            assert all(e["rss_mb"] > 150 and e["limit_mb"] == 150 for e in recycles)
            leak = sup.wait_event("child.memory_leak_suspected", timeout=10)
            assert leak["recycles"] == 3 and leak["hint"]
            assert not sup.find("child.crash_loop") and sup.get("/pid")[0] == 200
