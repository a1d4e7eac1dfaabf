"""A minimal OTLP/HTTP trace receiver for tests: collects the spans every process exports."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["CollectedSpan", "OtlpReceiver"]


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, object] = field(default_factory=dict, compare=False)
    """The span's attributes, as plain values."""
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list, compare=False)
    """Its events: name and attributes."""


def _plain(attributes: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for attribute in attributes:  # type: ignore[attr-defined]
        value = attribute.value
        kind = value.WhichOneof("value")
        out[attribute.key] = getattr(value, kind) if kind else None
    return out


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                found: list[CollectedSpan] = []
                for resource_spans in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
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
                                )
                            )
                with receiver._lock:
                    receiver.spans.extend(found)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

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
