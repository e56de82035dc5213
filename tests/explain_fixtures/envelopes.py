"""The envelopes people fetch JarlPM's logs in, applied to raw lines, for `jarlpm explain`'s tests.

Each function takes the supervisor's raw lines and returns them as the tool in
its name prints them: the fields, their order and their encodings follow what
journald, Docker, kubectl and the log platforms write (their documentation and
their output), so a test can check that explain reads a log the same in every
form.  ``ENVELOPES`` maps a name to each function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

HOST = "web-1"
POD = "jarlpm-6d5f7c9b8-x2k4q"
DOCKER_SPLIT = 16 * 1024  # Docker's json-file driver splits longer lines into several objects
_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def _fields(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(line: str, previous: float) -> float:
    stamp = _fields(line).get("timestamp")
    if isinstance(stamp, str):
        try:
            value = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            return previous
        return value if 0 < value < 4e9 else previous  # odd times (fuzzing) keep the envelope's clock sane
    return previous


def _times(lines: list[str]) -> list[float]:
    out, last = [], 1_795_600_000.0
    for line in lines:
        last = _seconds(line, last)
        out.append(last)
    return out


def _nano(ts: float) -> str:
    """RFC 3339 with nanoseconds, as Docker and kubectl write it."""
    whole = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{round((ts % 1) * 1e9):09d}Z"


def _journal_entry(n: int, line: str, ts: float) -> dict[str, str]:
    micros = str(round(ts * 1e6))
    return {"__CURSOR": f"s=8f2e;i={n:x};b=4a1c;m={n:x};t={int(micros):x};x=7d3e", "__REALTIME_TIMESTAMP": micros,
            "__MONOTONIC_TIMESTAMP": str(1_000_000 + n), "_BOOT_ID": "4a1c0b6e9f2d4e3b8a7c6d5e4f3a2b1c",
            "_TRANSPORT": "stdout", "PRIORITY": str(_PRIORITY.get(str(_fields(line).get("level", "info")), 6)),
            "SYSLOG_FACILITY": "3", "SYSLOG_IDENTIFIER": "jarlpm", "MESSAGE": line, "_PID": "812", "_UID": "998",
            "_COMM": "python3", "_SYSTEMD_UNIT": "jarlpm.service", "_HOSTNAME": HOST,
            "_MACHINE_ID": "0d3c9f1e2b7a4c5d8e6f1a2b3c4d5e6f", "_STREAM_ID": "9e1b"}


def journal_json(lines: list[str]) -> list[str]:
    """``journalctl -u jarlpm -o json``: one object per entry, MESSAGE holding the line."""
    return [json.dumps(_journal_entry(n, line, ts)) for n, (line, ts) in enumerate(zip(lines, _times(lines),
                                                                                        strict=True))]


def journal_json_seq_priority(lines: list[str]) -> list[str]:
    """``journalctl -o json-seq`` of a unit with ``SyslogLevelPrefix=no``: RS before each object, ``<3>`` kept."""
    out = []
    for n, (line, ts) in enumerate(zip(lines, _times(lines), strict=True)):
        entry = _journal_entry(n, line, ts)
        entry["MESSAGE"] = f"<{entry['PRIORITY']}>{line}"
        out.append("\x1e" + json.dumps(entry))
    return out


def journal_json_sse(lines: list[str]) -> list[str]:
    """``journalctl -o json-sse``: server-sent events, ``data: `` before each object, a blank line after."""
    return [x for entry in journal_json(lines) for x in (f"data: {entry}", "")]


def journal_export(lines: list[str]) -> list[str]:
    """``journalctl -o export``: KEY=value lines, a blank line after each entry."""
    out = []
    for n, (line, ts) in enumerate(zip(lines, _times(lines), strict=True)):
        out += [f"{key}={value}" for key, value in _journal_entry(n, line, ts).items()] + [""]
    return out


def docker_json_file(lines: list[str]) -> list[str]:
    """Docker's json-file driver: ``{"log": line + "\\n", "stream", "time"}``, long lines split in pieces."""
    out = []
    for line, ts in zip(lines, _times(lines), strict=True):
        pieces = [line[i:i + DOCKER_SPLIT] for i in range(0, len(line), DOCKER_SPLIT)] or [""]
        for n, piece in enumerate(pieces):
            end = "\n" if n == len(pieces) - 1 else ""
            out.append(json.dumps({"log": piece + end, "stream": "stdout", "time": _nano(ts)},
                                  separators=(",", ":")))
    return out


def docker_timestamps(lines: list[str]) -> list[str]:
    """``docker logs -t`` and ``kubectl logs --timestamps``: an RFC 3339 time with nanoseconds first."""
    return [f"{_nano(ts)} {line}" for line, ts in zip(lines, _times(lines), strict=True)]


def kubectl_prefix(lines: list[str]) -> list[str]:
    """``kubectl logs --prefix``: ``[pod/NAME/container]`` first."""
    return [f"[pod/{POD}/jarlpm] {line}" for line in lines]


def kubectl_prefix_timestamps(lines: list[str]) -> list[str]:
    """``kubectl logs --prefix --timestamps``."""
    return [f"[pod/{POD}/jarlpm] {_nano(ts)} {line}" for line, ts in zip(lines, _times(lines), strict=True)]


def platform_message(lines: list[str]) -> list[str]:
    """An export of Elastic/Datadog/CloudWatch style: ``message`` holds the line, ``@timestamp`` the time."""
    return [json.dumps({"@timestamp": _nano(ts), "host": {"name": HOST}, "service": "jarlpm", "message": line})
            for line, ts in zip(lines, _times(lines), strict=True)]


def platform_log_kubernetes(lines: list[str]) -> list[str]:
    """Fluent Bit's kubernetes filter: ``log``, ``stream``, ``time`` and the pod's metadata."""
    return [json.dumps({"time": _nano(ts), "stream": "stdout", "log": line,
                        "kubernetes": {"pod_name": POD, "namespace_name": "prod", "container_name": "jarlpm"}})
            for line, ts in zip(lines, _times(lines), strict=True)]


def platform_msg(lines: list[str]) -> list[str]:
    """A shipper writing ``msg`` and an epoch ``ts`` in milliseconds."""
    return [json.dumps({"ts": round(ts * 1000), "level": "INFO", "msg": line, "pod": POD})
            for line, ts in zip(lines, _times(lines), strict=True)]


def platform_object(lines: list[str]) -> list[str]:
    """Google Cloud Logging: the line parsed into ``jsonPayload``; lines that are not JSON in textPayload."""
    out = []
    for line, ts in zip(lines, _times(lines), strict=True):
        fields = _fields(line)
        payload: dict[str, Any] = {"jsonPayload": fields} if fields else {"textPayload": line}
        out.append(json.dumps({"insertId": "1x2y3z", **payload, "resource": {"type": "k8s_container"},
                               "timestamp": _nano(ts), "severity": "INFO"}))
    return out


def platform_itself(lines: list[str]) -> list[str]:
    """A platform that merges the line's own fields with its metadata (Loki's JSON, Vector)."""
    out = []
    for line in lines:
        fields = _fields(line)
        out.append(json.dumps({**fields, "kubernetes": {"pod_name": POD}, "stream": "stdout"}) if fields else line)
    return out


def raw(lines: list[str]) -> list[str]:
    return list(lines)


ENVELOPES: dict[str, Callable[[list[str]], list[str]]] = {
    "raw": raw, "journal_json": journal_json, "journal_json_seq_priority": journal_json_seq_priority,
    "journal_json_sse": journal_json_sse, "journal_export": journal_export, "docker_json_file": docker_json_file,
    "docker_timestamps": docker_timestamps, "kubectl_prefix": kubectl_prefix,
    "kubectl_prefix_timestamps": kubectl_prefix_timestamps, "platform_message": platform_message,
    "platform_log_kubernetes": platform_log_kubernetes, "platform_msg": platform_msg,
    "platform_object": platform_object, "platform_itself": platform_itself,
}
