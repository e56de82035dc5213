"""Unwrap the envelopes logs are fetched in, down to the supervisor's own JSON line.

People rarely hand explain the raw stream: ``journalctl -o json`` wraps each line
in an object whose ``MESSAGE`` holds it, Docker's json-file driver in one whose
``log`` does, ``kubectl logs --prefix`` puts ``[pod/NAME/container]`` before it,
and log platforms export objects that hold it as a string field (``message``,
``log``, ``msg``) or as a nested object.  Read naively, all of that is "other
JSON" and the timeline is empty: the one answer a 3 a.m. tool must not give.

Each line is opened on its own, so envelopes may be mixed.  The envelope's time
is kept as a fallback for an event without one, and its replica (host, pod) as
the event's origin, so replicas whose supervisors have the same pid (PID 1 in
every container) stay apart.  Pure logic, no I/O; the only state is for the two
formats that spread one entry over several lines: journald's export format (one
field per line, the time before the message) and Docker's partial entries (a
line longer than 16 KiB is split into several objects).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

RAW = "raw"
JOURNAL = "journal"  # journalctl -o json / json-seq / json-sse
JOURNAL_EXPORT = "journal-export"  # journalctl -o export: KEY=value lines, a blank line between entries
DOCKER = "docker"  # Docker's json-file driver (/var/lib/docker/containers/*/*-json.log)
KUBECTL = "kubectl"  # kubectl logs --prefix
PLATFORM = "platform"  # a log platform's export: our line in a string field, or our object nested
JSON = "json"  # a JSON object that holds nothing of ours

MAX_DEPTH = 3  # envelopes inside envelopes (a platform's export of Docker's lines) are opened this deep
MAX_PARTIAL = 1 << 20  # characters of a Docker line held while its pieces arrive

_decoder = json.JSONDecoder()
# [pod/NAME/container]: the pod names the replica (a platform's export names it the same way).
_KUBECTL_PREFIX = re.compile(r"\[(?:pod|deployment|statefulset|daemonset|job|replicaset)/([^\]\s/]{1,253})"
                             r"(?:/[^\]\s]{0,253})?\] ")
_EXPORT_FIELD = re.compile(r"(_{0,2}[A-Z][A-Z0-9_]{0,63})=")
_PRIORITY = re.compile(r"<[0-7]>")
# Where log platforms put the line they received (Loki: line; GCP: textPayload; Datadog, Elastic,
# CloudWatch, Vector: message; Fluent Bit: log; zap/logrus-style shippers: msg).
_TEXT_KEYS = ("message", "log", "msg", "line", "textPayload", "body", "MESSAGE")
# Where they put it when they parsed it as JSON (GCP: jsonPayload; Elastic: _source; Fluentd: json).
_OBJECT_KEYS = ("jsonPayload", "json", "_source", "fields", "data", "payload", "body", "content", "log", "message")
_DOCKER_KEYS = frozenset({"log", "stream", "time", "attrs"})
_TIME_KEYS = ("@timestamp", "timestamp", "time", "ts", "date", "_time", "receiveTimestamp", "__REALTIME_TIMESTAMP")
_ORIGIN_KEYS = ("pod", "pod_name", "k8s.pod.name", "kubernetes.pod_name", "host", "hostname", "_HOSTNAME",
                "container_name", "container")


@dataclass(slots=True)
class Opened:
    """What a line held: our object (``obj``) or a line to parse (``text``), with the envelope's facts.

    ``obj`` is set for every JSON object found; ``ours`` says whether it is a
    JarlPM event (an ``event`` name).  ``via`` is the outermost envelope: what the
    input looked like, for the summary and for the message when nothing was ours.
    """


    via: str
    text: str | None = None
    obj: dict[str, Any] | None = None
    when: object = None  # the envelope's time as written; parsed (``parse_any``) only for an event without one
    origin: str | None = None

    @property
    def ours(self) -> bool:
        return self.obj is not None and isinstance(self.obj.get("event"), str)


def _decode(text: str) -> Any:
    try:
        return _decoder.raw_decode(text)[0]
    except (ValueError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    """A string field, or journald's array of bytes (a MESSAGE that is not valid UTF-8)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) <= 1 << 20 and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def _origin(obj: dict[str, Any]) -> str | None:
    """The replica an envelope names: a pod, else a host, else a container."""
    kube = obj.get("kubernetes")
    if isinstance(kube, dict):
        pod = kube.get("pod")
        name = pod.get("name") if isinstance(pod, dict) else kube.get("pod_name")
        if isinstance(name, str) and name:
            return name[:200]
    resource = obj.get("resource")  # Google Cloud Logging: resource.labels.pod_name
    labels = resource.get("labels") if isinstance(resource, dict) else None
    if isinstance(labels, dict) and isinstance(labels.get("pod_name"), str) and labels["pod_name"]:
        return str(labels["pod_name"])[:200]
    for key in _ORIGIN_KEYS:
        value = obj.get(key)
        if isinstance(value, dict):
            value = value.get("name") or value.get("hostname")
        if isinstance(value, str) and value:
            return value[:200]
    return None


def merged_origin(obj: dict[str, Any]) -> str | None:
    """The replica of an event a platform merged with its own metadata (our events have no such keys)."""
    if "kubernetes" in obj or "pod" in obj:
        return _origin(obj)
    return None


def _when(obj: dict[str, Any]) -> object:
    """The first time field of a platform's object, as written (parsed later, only if needed)."""
    for key in _TIME_KEYS:
        if obj.get(key) is not None:
            return obj[key]
    return None


class Envelopes:
    """Opens lines one at a time; holds what a multi-line entry needs until its last line."""

    def __init__(self) -> None:
        self.export_when: str | None = None
        self.in_entry = False  # inside an entry that a blank line ends (journal export, json-sse)
        self.partial: dict[str, str] = {}
        self.last_via = RAW  # the envelope of the line just opened, for counting what the input looked like

    def open(self, line: str) -> Opened | None:
        """The content of ``line``; None when it is part of an envelope holding nothing by itself."""
        origin = None
        text = line
        first = text[:1]
        if first == "[":
            match = _KUBECTL_PREFIX.match(text)
            if match is not None:
                origin, text = match.group(1), text[match.end():]
                first = text[:1]
        elif first == "\x1e":  # json-seq (RFC 7464): a record separator before each object
            text = text[1:]
            first = text[:1]
        elif first == "d" and text.startswith("data: {"):  # json-sse: server-sent events, a blank line after each
            text = text[6:]
            first = "{"
            self.in_entry = True
        via = KUBECTL if origin is not None else RAW
        self.last_via = via
        if first == "{":
            obj = _decode(text)
            if isinstance(obj, dict):
                opened = self._object(obj, via, origin, 0)
                if opened is not None:
                    self.last_via = opened.via
                return opened
        elif first == "<" and _PRIORITY.match(text):
            text = text[3:]
        elif first.isupper() or first == "_":
            return self._export_field(text, origin)
        elif self.in_entry and not text.strip():
            self.in_entry = False  # the blank line that ends a journal export entry or a server-sent event
            self.export_when = None
            return None
        return Opened(via, text=text, origin=origin)

    def _export_field(self, text: str, origin: str | None) -> Opened | None:
        match = _EXPORT_FIELD.match(text)
        if match is None:
            return Opened(KUBECTL if origin else RAW, text=text, origin=origin)
        self.last_via = JOURNAL_EXPORT
        self.in_entry = True
        key, value = match.group(1), text[match.end():]
        if key == "MESSAGE":
            return self._inner(value, JOURNAL_EXPORT, self.export_when, origin, 0)
        if key == "__REALTIME_TIMESTAMP":
            self.export_when = value
        return None

    def _object(self, obj: dict[str, Any], via: str, origin: str | None, depth: int) -> Opened | None:
        if isinstance(obj.get("event"), str):
            return Opened(via, obj=obj, origin=origin or merged_origin(obj))
        if "MESSAGE" in obj:
            message = _text(obj["MESSAGE"])
            if message is not None:
                host = obj.get("_HOSTNAME")
                return self._inner(message, JOURNAL if via == RAW else via, obj.get("__REALTIME_TIMESTAMP"),
                                   origin or (host[:200] if isinstance(host, str) and host else None), depth)
        log = obj.get("log")
        if isinstance(log, str) and obj.keys() <= _DOCKER_KEYS:
            return self._docker(obj, log, via, origin, depth)
        return self._platform(obj, via, origin, depth)

    def _docker(self, obj: dict[str, Any], log: str, via: str, origin: str | None, depth: int) -> Opened | None:
        stream = str(obj.get("stream"))
        held = self.partial.pop(stream, "")
        if not log.endswith("\n") and len(held) + len(log) < MAX_PARTIAL:
            self.partial[stream] = held + log  # Docker split a long line: the rest comes in the next objects
            self.last_via = DOCKER
            return None
        return self._inner((held + log).rstrip("\r\n"), DOCKER if via == RAW else via, obj.get("time"), origin,
                           depth)

    def _platform(self, obj: dict[str, Any], via: str, origin: str | None, depth: int) -> Opened:
        outer = PLATFORM if via == RAW else via
        if depth < MAX_DEPTH:
            for key in _TEXT_KEYS:
                value = obj.get(key)
                if isinstance(value, str) and "{" in value:
                    opened = self._inner(value, outer, _when(obj), origin or _origin(obj), depth)
                    if opened.ours or opened.obj is None:
                        return opened
            for key in _OBJECT_KEYS:
                value = obj.get(key)
                if isinstance(value, dict):
                    opened_obj = self._object(value, outer, origin or _origin(obj), depth + 1)
                    if opened_obj is not None and opened_obj.ours:
                        if opened_obj.when is None:
                            opened_obj.when = _when(obj)
                        return opened_obj
        return Opened(JSON if via == RAW else via, obj=obj, origin=origin)

    def _inner(self, text: str, via: str, when: object, origin: str | None, depth: int) -> Opened:
        """The line an envelope held: parsed further when it is itself an object (our event, or another envelope)."""
        if text[:1] == "<" and _PRIORITY.match(text):
            text = text[3:]  # syslog priority prefix (SyslogLevelPrefix), when the journal kept it
        stripped = text.lstrip()
        # An access line (most of a busy log) is left to the reader's fast path, which reads it without a parse.
        if stripped[:1] == "{" and depth < MAX_DEPTH and '"http.access"' not in stripped:
            obj = _decode(stripped)
            if isinstance(obj, dict):
                opened = self._object(obj, via, origin, depth + 1)
                if opened is not None:
                    if opened.when is None:
                        opened.when = when
                    return opened
        return Opened(via, text=text, when=when, origin=origin)
