"""A lean ASGI middleware: one server span per HTTP request, continuing the client's
W3C trace context when it sends one. The hot routes (`llmbus.edge.hot`) open the same
span themselves with `server_span` and `record_status`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmbus.telemetry import extract, recording
from llmbus.telemetry.requests import current_request

__all__ = ["TracingMiddleware", "note_trace", "record_status", "server_span"]

_tracer = trace.get_tracer("llmbus.edge")
_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
_ERROR = Status(StatusCode.ERROR)


class _Carried:
    """What a server span becomes when nothing records: the client's trace context, when
    it sent one, made current so that it travels on over the bus; no span object."""

    __slots__ = ("_headers", "_token")

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> Span:
        if self._headers:
            self._token = otel_context.attach(extract(self._headers))
        return INVALID_SPAN

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)


def server_span(scope: Scope) -> AbstractContextManager[Span]:
    """The request's server span, made current (a context manager)."""
    headers = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in scope["headers"]
        if k in (b"traceparent", b"tracestate")
    }
    if not recording():
        return _Carried(headers)
    method, path = scope["method"], scope["path"]
    attributes = {"http.request.method": method, "url.path": path}
    request = current_request()
    if request is not None:
        attributes["llmbus.request_id"] = request.id
        if request.client_id is not None:
            attributes["llmbus.client_request_id"] = request.client_id
    return _tracer.start_as_current_span(
        f"{method} {path}", context=extract(headers), kind=SpanKind.SERVER, attributes=attributes
    )


def note_trace(span: Span) -> None:
    """Remember the server span's trace with the request, for its log line."""
    request = current_request()
    context = span.get_span_context()
    if not context.is_valid:  # nothing records: the client's own trace, if it sent one
        context = trace.get_current_span().get_span_context()
    if request is not None and context.is_valid:
        request.trace_id = f"{context.trace_id:032x}"


def record_status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(_ERROR)


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        with server_span(scope) as span:
            note_trace(span)

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record_status(span, int(message["status"]))
                await send(message)

            await self.app(scope, receive, traced_send)
