"""A trace backend for tests: an OTLP/HTTP receiver that collects the spans every process
exports and serves them through Jaeger's query API.

`GET /api/traces/{trace_id}`, `GET /api/traces?service=...&tags={"key":"value"}` and
`GET /api/services` answer in the JSON that Jaeger's own query service answers with
(`{"data": [{"traceID", "spans": [...], "processes": {...}}]}`), converted from OTLP the
way Jaeger converts it: attributes as typed `tags` (arrays as their JSON text), the span
kind as the `span.kind` tag, the parent as a `CHILD_OF` reference, events as `logs` whose
`event` field is the event's name, the service in `processes`.

When a `jaeger` binary (Jaeger v2, all-in-one) is on PATH, `Jaeger` starts it on free
ports and the receiver forwards every export to it: tests that query by HTTP then query
Jaeger itself; those that read the receiver's memory keep working.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmbus.testing import Process, free_port, wait_for_http

__all__ = ["CollectedSpan", "Jaeger", "OtlpReceiver", "jaeger_trace"]

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
"""OTLP span kinds as Jaeger's `span.kind` tag names them."""


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, object] = field(default_factory=dict, compare=False)
    """The span's attributes, as plain values (an array as a list)."""
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list, compare=False)
    """Its events: name and attributes."""
    start_ns: int = field(default=0, compare=False)
    end_ns: int = field(default=0, compare=False)
    event_times_ns: list[int] = field(default_factory=list, compare=False)
    status: int = field(default=0, compare=False)
    """0 unset, 1 ok, 2 error."""
    scope: str = field(default="", compare=False)


def _value(value: Any) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _plain(attributes: Iterable[Any]) -> dict[str, object]:
    return {attribute.key: _value(attribute.value) for attribute in attributes}


def _tag(key: str, value: object) -> dict[str, object]:
    """One Jaeger tag: typed as Jaeger types the OTLP value it came from."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": value.hex()}
    if isinstance(value, list | dict):
        return {"key": key, "type": "string", "value": json.dumps(value, separators=(",", ":"))}
    return {"key": key, "type": "string", "value": str(value)}


def _tag_text(tag: dict[str, object]) -> str:
    """A tag's value as the string a tag query compares with (Jaeger's `AsString`)."""
    value = tag["value"]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jaeger_trace(spans: list[CollectedSpan]) -> dict[str, object]:
    """One trace (spans of one trace id) in the shape of Jaeger's query API."""
    processes: dict[str, dict[str, object]] = {}
    process_of: dict[str, str] = {}
    out = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        pid = process_of.get(span.service)
        if pid is None:
            pid = process_of[span.service] = f"p{len(process_of) + 1}"
            processes[pid] = {"serviceName": span.service, "tags": []}
        tags = [_tag(key, value) for key, value in span.attributes.items()]
        if span.kind in _KINDS:
            tags.append(_tag("span.kind", _KINDS[span.kind]))
        if span.scope:
            tags.append(_tag("otel.scope.name", span.scope))
        if span.status == 2:
            tags += [_tag("otel.status_code", "ERROR"), _tag("error", True)]
        elif span.status == 1:
            tags.append(_tag("otel.status_code", "OK"))
        logs = [
            {
                "timestamp": at // 1000,
                "fields": [_tag("event", name), *(_tag(k, v) for k, v in attributes.items())],
            }
            for (name, attributes), at in zip(span.events, span.event_times_ns, strict=True)
        ]
        references = (
            [{"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_id}]
            if span.parent_id
            else []
        )
        out.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": (span.end_ns - span.start_ns) // 1000,
                "tags": tags,
                "logs": logs,
                "processID": pid,
                "warnings": None,
                "flags": 1,
            }
        )
    trace_id = spans[0].trace_id if spans else ""
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}


def _matches(trace: dict[str, Any], service: str, wanted: dict[str, str]) -> bool:
    """Jaeger's search: some span of `service` carries every wanted tag (among its tags,
    its process's tags or its logs' fields), compared as strings."""
    for span in trace["spans"]:
        if trace["processes"][span["processID"]]["serviceName"] != service:
            continue
        fields = [*span["tags"], *trace["processes"][span["processID"]]["tags"]]
        for log in span["logs"]:
            fields += log["fields"]
        have = {str(tag["key"]): _tag_text(tag) for tag in fields}
        if all(have.get(key) == value for key, value in wanted.items()):
            return True
    return False


class OtlpReceiver:
    def __init__(self, forward_to: str = "") -> None:
        """`forward_to`: another OTLP/HTTP endpoint (Jaeger's) that gets every export too."""
        self.spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        self._forward = f"{forward_to.rstrip('/')}/v1/traces" if forward_to else ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._collect(ExportTraceServiceRequest.FromString(body))
                if receiver._forward:
                    forwarded = urllib.request.Request(
                        receiver._forward,
                        data=body,
                        headers={"Content-Type": "application/x-protobuf"},
                        method="POST",
                    )
                    with urllib.request.urlopen(forwarded, timeout=5) as answered:
                        answered.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                status, answer = receiver._query(self.path)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def trace(self, trace_id: str) -> list[CollectedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def collected(self) -> list[CollectedSpan]:
        """Every span received so far."""
        with self._lock:
            return list(self.spans)

    def _collect(self, request: ExportTraceServiceRequest) -> None:
        found: list[CollectedSpan] = []
        for resource_spans in request.resource_spans:
            service = str(_plain(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        CollectedSpan(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            _plain(span.attributes),
                            [(e.name, _plain(e.attributes)) for e in span.events],
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            [e.time_unix_nano for e in span.events],
                            span.status.code,
                            scope_spans.scope.name,
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def _query(self, target: str) -> tuple[int, dict[str, object]]:
        """Jaeger's query API over the spans received."""
        url = urlsplit(target)
        path = url.path.rstrip("/")
        empty: dict[str, object] = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": None}
        if path == "/api/services":
            with self._lock:
                names = sorted({span.service for span in self.spans})
            return 200, {**empty, "data": names, "total": len(names)}
        if path.startswith("/api/traces/"):
            spans = self.trace(path.removeprefix("/api/traces/").lower())
            if not spans:
                return 404, {**empty, "errors": [{"code": 404, "msg": "trace not found"}]}
            return 200, {**empty, "data": [jaeger_trace(spans)]}
        if path == "/api/traces":
            query = parse_qs(url.query)
            service = (query.get("service") or [""])[0]
            if not service:
                return 400, {**empty, "errors": [{"code": 400, "msg": "parameter 'service' is required"}]}
            wanted: dict[str, str] = {}
            for text in query.get("tags", []):
                wanted.update({str(k): str(v) for k, v in json.loads(text).items()})
            for pair in query.get("tag", []):
                key, _, value = pair.partition(":")
                wanted[key] = value
            limit = int((query.get("limit") or ["20"])[0])
            by_trace: dict[str, list[CollectedSpan]] = {}
            for span in self.collected():
                by_trace.setdefault(span.trace_id, []).append(span)
            traces = [jaeger_trace(spans) for spans in by_trace.values()]
            found = [trace for trace in traces if _matches(trace, service, wanted)][-limit:]
            return 200, {**empty, "data": found, "total": len(found)}
        return 404, {**empty, "errors": [{"code": 404, "msg": f"no such path {path}"}]}


_JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class Jaeger:
    """Jaeger v2 all-in-one (the `jaeger` binary) with in-memory storage, on free ports."""

    def __init__(self, binary: str, log_dir: Path) -> None:
        self.otlp_port, self.query_port, grpc = free_port(), free_port(), free_port()
        config = log_dir / "jaeger.yaml"
        config.write_text(_JAEGER_CONFIG.format(query=self.query_port, grpc=grpc, otlp=self.otlp_port))
        self.process = Process(
            "jaeger", [binary, "--config", f"file:{config}"], log_path=log_dir / "jaeger.log"
        )

    @staticmethod
    def binary() -> str | None:
        return shutil.which("jaeger")

    @property
    def endpoint(self) -> str:
        """Its OTLP/HTTP receiver."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self) -> Jaeger:
        self.process.start()
        wait_for_http(f"{self.query_url}/api/services", process=self.process)
        return self

    def stop(self) -> None:
        self.process.stop()
