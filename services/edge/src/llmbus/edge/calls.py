"""One chat request on the bus, as the edge sees it: publish the route request, then read
the reply stream with its sequence numbers, heartbeats and timeouts.

Failure modes become client errors: nobody listening (503 at once), no worker taking the
request within the accept timeout twice (503), a silent worker (504), no answer started
within the first-byte timeout or none finished by the deadline (504), lost frames (502).

A request nobody has taken within the accept timeout was most likely held by a router or
a worker that died with it (NATS had handed it over before it saw the connection go): the
edge routes it once more, under a new request id and reply subject, so a late answer to
the first one lands nowhere (its worker hears "no responders" and stops) and the client
never sees the two. Nothing of the answer had begun, so this is invisible to the client
but for the wait.

Deadlines: the request's total deadline and first-byte deadline travel on the bus
(epoch ms) and bound every upstream call the workers make for it, failover included.
The edge waits `DEADLINE_GRACE` past each, so that the worker's own error, which names
the provider, normally arrives first; its own 504 is the backstop for a worker that is
gone. A client may shorten both (`client_timeouts`), never lengthen them."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Final

import msgspec
from opentelemetry import trace
from prometheus_client import Counter

from llmbus.api import (
    ApiError,
    GatewayTimeout,
    InvalidRequest,
    Unavailable,
    UpstreamFailed,
    error_from_status,
)
from llmbus.bus import Bus, BusFailure, Delivery, Inbox, StreamInbox, is_no_responders
from llmbus.edge.drain import is_stopping
from llmbus.edge.quota import Reservation
from llmbus.edge.usage import UsageReporter
from llmbus.proto import (
    CANCEL,
    ROUTE,
    AnyEvent,
    CancelRequest,
    ChatRequest,
    Client,
    Error,
    Heartbeat,
    Needs,
    RequestRecord,
    RouteRequest,
    Started,
    Usage,
    chat_codec,
    frames_of,
)
from llmbus.telemetry.refs import credential_ref
from llmbus.telemetry.requests import claim_request_id, current_request

log = logging.getLogger("llmbus.edge.calls")

__all__ = [
    "DEADLINE_GRACE",
    "LIVE",
    "TIMEOUT_HEADER",
    "Call",
    "client_timeouts",
    "raise_for",
    "report_refusal",
    "report_usage",
]

TIMEOUT_HEADER: Final = "x-llmbus-timeout"
"""A client's own total deadline, in seconds: it shortens the gateway's, never lengthens it."""
_SDK_TIMEOUT_HEADERS: Final = ("x-stainless-timeout", "x-stainless-read-timeout")
"""The timeout the official SDKs announce (anthropic sends both, openai the read timeout):
how long the SDK waits for a byte, so the first byte of a stream, or a whole answer."""
SDK_TIMEOUT_MARGIN: Final = 1.0
"""Seconds past an SDK's announced timeout before the gateway gives up itself: the SDK
stops waiting first and its disconnect cancels the call at once; the deadline is the
backstop for a client that does not hang up."""
REROUTED = Counter(
    "llmbus_edge_rerouted_total", "Requests routed a second time because nobody took the first"
)
DEADLINE_GRACE: Final = 0.5
"""Seconds the edge waits past a deadline for the worker's own error."""


def client_timeouts(
    headers: Mapping[str, str], stream: bool, total: float, first_byte: float
) -> tuple[float, float]:
    """The (total, first-byte) timeouts of one request: the gateway's, shortened by the
    client's `x-llmbus-timeout` (the total) and by the timeout its SDK announces (the
    first byte, and the total of an answer that is not streamed, which the SDK waits
    for as one read). A value that is not a number of seconds above 0 is a 400."""
    own = headers.get(TIMEOUT_HEADER)
    if own is not None:
        seconds = _seconds(own)
        if seconds is None:
            raise InvalidRequest(
                f"`{TIMEOUT_HEADER}` must be a number of seconds above 0, got `{own[:32]}`",
                code="invalid_timeout",
            )
        total = min(total, seconds)
    for name in _SDK_TIMEOUT_HEADERS:
        announced = _seconds(headers.get(name))
        if announced is not None:
            waited = announced + SDK_TIMEOUT_MARGIN
            first_byte = min(first_byte, waited)
            if not stream:
                total = min(total, waited)
    return total, min(first_byte, total)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


LIVE: dict[str, Call] = {}
"""The calls in flight on this edge process, by bus request id (the console's live view):
one dict entry per call, set when it opens and removed when it closes."""


class Call:
    """Reply stream of one request. Use `start()`, then `next()` until a terminal event;
    always `close()` (it cancels the upstream call if the stream did not finish)."""

    def __init__(
        self,
        bus: Bus,
        inbox: Inbox,
        chat: ChatRequest,
        client: Client,
        *,
        accept_timeout: float,
        idle_timeout: float,
        request_timeout: float,
        first_byte_timeout: float | None = None,
        tokens: int = 0,
        reservation: Reservation | None = None,
        usage: UsageReporter | None = None,
        api: str = "",
    ) -> None:
        self.began = time.perf_counter()
        self.bus = bus
        self.usage = usage
        """Where the request's usage record goes when it ends."""
        self.api = api
        """The client API the request came in (`openai`, `anthropic`...), for its record."""
        self.first_token_at = 0.0
        """`perf_counter()` at the first streamed delta (0: not streamed, or none came)."""
        self.chat = chat
        self.client = client
        self.tokens = tokens
        """The estimate of the tokens the request may use, for provider limits."""
        self.reservation = reservation
        """What the client key's limits reserved, settled when the request ends."""
        self.request_id = claim_request_id(chat.model)
        """The HTTP request's own id (`x-request-id`) for its first call, a fresh one for
        any other call it makes and after a re-routing (`llmbus.telemetry.requests`)."""
        self._inbox = inbox
        self._inbox_cm = inbox.open(self.request_id)
        self.reply, self._queue = self._inbox_cm.__enter__()
        self._held: deque[AnyEvent] = deque()
        """Events that arrived in one message with an earlier one, not taken yet."""
        self._accept_timeout = accept_timeout
        self._idle_timeout = idle_timeout
        first_byte = (
            request_timeout if first_byte_timeout is None else min(first_byte_timeout, request_timeout)
        )
        self._first_byte_timeout = first_byte
        now, wall = time.monotonic(), time.time()
        self._deadline = now + request_timeout + DEADLINE_GRACE
        self._first_byte_at = now + first_byte + DEADLINE_GRACE
        self._deadline_ms = int((wall + request_timeout) * 1000)
        self._first_byte_ms = int((wall + first_byte) * 1000)
        self._seq = 0
        self.accepted = False
        self.started = False
        """Whether the answer has begun (a `Started` or any later event)."""
        self.finished = False
        self.rerouted = False
        """Whether the request was routed a second time (nobody took the first)."""
        self._closed = False
        self.opened = now
        """When the call opened (monotonic seconds)."""
        self.provider = ""
        """The provider that took it, once its answer has started."""
        LIVE[self.request_id] = self

    async def start(self) -> None:
        chat = self.chat
        request = RouteRequest(
            request_id=self.request_id,
            model=chat.model,
            reply=self.reply,
            deadline=self._deadline_ms,
            first_byte_deadline=self._first_byte_ms,
            client=self.client,
            needs=Needs(streaming=chat.stream, tools=bool(chat.tools), vision=chat.has_images()),
            body=msgspec.Raw(chat_codec.encode(chat)),
            tokens=self.tokens,
        )
        try:
            # Written at once, not at the end of the loop's pass, for a stream (its first
            # token waits on it) and when this is the edge's only call (nothing would share
            # the write); calls started together share one.
            alone = len(LIVE) <= 1
            await self.bus.publish(
                ROUTE, request, reply=self.reply, pace="now" if chat.stream or alone else "pass"
            )
        except BusFailure:
            raise Unavailable("the message bus is unavailable", code="bus_unavailable") from None

    async def next(self) -> AnyEvent:
        """The next event other than a heartbeat; raises ApiError when the stream fails."""
        while True:
            if self._held:
                event = self._accept(self._held.popleft())
            else:
                queue: StreamInbox = self._queue
                msg = queue.get_nowait() if not queue.empty() else await self._wait(queue)
                if msg is None:
                    continue  # routed again: wait on the new stream
                event = self._take(msg)
            if event is not None:
                return event

    def next_nowait(self) -> AnyEvent | None:
        """The next event if its frame has arrived already, else None (as `next`
        otherwise)."""
        while self._held:
            event = self._accept(self._held.popleft())
            if event is not None:
                return event
        queue: StreamInbox = self._queue
        while not queue.empty():
            event = self._take(queue.get_nowait())
            if event is not None:
                return event
        return None

    def _take(self, msg: Delivery) -> AnyEvent | None:
        """The frame's event, None for a heartbeat; raises ApiError for a broken stream."""
        if not msg.data and is_stopping(msg):
            raise Unavailable(
                "this gateway instance is restarting and could not finish the answer: send the request again",
                code="gateway_stopping",
            )
        if is_no_responders(msg):
            raise Unavailable(
                f"no llmbus worker is available to serve `{self.chat.model}` (router or worker down)",
                code="no_worker_available",
            )
        try:
            events = frames_of(msg.data)  # several in one message: made in one pass
        except msgspec.DecodeError:
            raise UpstreamFailed("a malformed frame arrived on the reply stream", code="bad_frame") from None
        if not events:
            raise UpstreamFailed("an empty message arrived on the reply stream", code="bad_frame")
        self._held.extend(events[1:])
        return self._accept(events[0])

    def _accept(self, event: AnyEvent) -> AnyEvent | None:
        """`event` if it is the next in sequence, None for a heartbeat; raises ApiError
        for a gap in the sequence."""
        if event.seq != self._seq:
            raise UpstreamFailed(
                f"the reply stream lost frames (expected {self._seq}, got {event.seq})", code="stream_gap"
            )
        self._seq += 1
        self.accepted = True
        if isinstance(event, Heartbeat):
            return None
        if isinstance(event, Error):
            self.finished = True
        else:
            self.started = True
        return event

    async def _wait(self, queue: StreamInbox) -> Delivery | None:
        """The next frame; None when the request was routed again instead."""
        now = time.monotonic()
        remaining = (self._deadline if self.started else min(self._deadline, self._first_byte_at)) - now
        timeout = max(0.0, min(self._idle_timeout if self.accepted else self._accept_timeout, remaining))
        try:
            return await queue.get_within(timeout)
        except TimeoutError:
            now = time.monotonic()
            if now >= self._deadline:
                raise GatewayTimeout(
                    "the request did not finish within its deadline", code="deadline_exceeded"
                ) from None
            if not self.started and now >= self._first_byte_at:
                raise GatewayTimeout(
                    f"no upstream started its answer within {self._first_byte_timeout:g}s",
                    code="first_byte_timeout",
                ) from None
            if not self.accepted and not self.rerouted and self._time_for_another(now):
                await self._reroute()
                return None
            if not self.accepted:
                raise Unavailable(
                    f"no llmbus worker took the request for `{self.chat.model}` "
                    f"within {self._accept_timeout:g}s",
                    code="no_worker_available",
                ) from None
            raise GatewayTimeout("the worker stopped responding", code="worker_timeout") from None

    def _time_for_another(self, now: float) -> bool:
        """Whether a second routing could still be taken and answer in time."""
        return min(self._deadline, self._first_byte_at) - now > 2 * self._accept_timeout

    async def _reroute(self) -> None:
        old_id, old_inbox = self.request_id, self._inbox_cm
        self.rerouted = True
        self.request_id = claim_request_id()
        LIVE[self.request_id] = LIVE.pop(old_id, self)
        self._inbox_cm = self._inbox.open(self.request_id)
        self.reply, self._queue = self._inbox_cm.__enter__()
        old_inbox.__exit__(None, None, None)
        self._seq = 0
        self._held.clear()
        REROUTED.inc()
        trace.get_current_span().add_event(
            "llmbus.rerouted", {"llmbus.first_request_id": old_id, "llmbus.bus_request_id": self.request_id}
        )
        log.info("re-routed: nobody took bus request %s; now %s", old_id, self.request_id)
        try:
            await self.bus.publish(CANCEL, CancelRequest(request_id=old_id), request_id=old_id, traced=False)
        except BusFailure:
            pass
        await self.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        LIVE.pop(self.request_id, None)
        self._inbox_cm.__exit__(None, None, None)
        if not self.finished:
            try:
                await self.bus.publish(
                    CANCEL,
                    CancelRequest(request_id=self.request_id),
                    request_id=self.request_id,
                    traced=False,
                )
            except BusFailure:
                pass


def report_usage(
    call: Call, first: AnyEvent | None, usage: Usage | None, status: int, error: str = ""
) -> None:
    """Record the ended request (no I/O: the reporter publishes in the background).

    `first` is the call's first event (`Started` names the provider, upstream model,
    credential and attempt), `usage` the last `Usage` event, `status` the HTTP status
    the client got (499 when it went away) and `error` the error code of a failure."""
    reporter = call.usage
    if reporter is None:
        return
    began = first if isinstance(first, Started) else None
    provider = began.provider if began is not None else first.provider if isinstance(first, Error) else ""
    reporter.add(
        _record(
            call.client,
            call.chat,
            call.api,
            call.began,
            status,
            error,
            provider=provider,
            credential=began.credential if began is not None else "",
            upstream_model=began.model if began is not None else "",
            failovers=began.attempt - 1 if began is not None else 0,
            usage=usage,
            ttft=call.first_token_at - call.began if call.first_token_at else 0.0,
            bus_id=call.request_id,
        )
    )


def report_refusal(
    reporter: UsageReporter | None, client: Client, chat: ChatRequest, api: str, began: float, error: ApiError
) -> None:
    """Record a request the edge refused before it reached the bus (the key's limits)."""
    if reporter is not None:
        reporter.add(_record(client, chat, api, began, error.status, error.code))


def _record(
    client: Client,
    chat: ChatRequest,
    api: str,
    began: float,
    status: int,
    error: str,
    *,
    provider: str = "",
    credential: str = "",
    upstream_model: str = "",
    failovers: int = 0,
    usage: Usage | None = None,
    ttft: float = 0.0,
    bus_id: str = "",
) -> RequestRecord:
    info = current_request()
    return RequestRecord(
        at=time.time(),
        request_id=info.id if info is not None else bus_id,
        trace_id=info.trace_id if info is not None else "",
        key_id=client.id,
        provider=provider,
        credential=credential_ref(credential) if credential else "",
        model=chat.model,
        upstream_model=upstream_model,
        input_tokens=usage.prompt_tokens if usage is not None else 0,
        output_tokens=usage.completion_tokens if usage is not None else 0,
        cached_tokens=usage.cached_tokens if usage is not None else 0,
        reasoning_tokens=usage.reasoning_tokens if usage is not None else 0,
        latency_ms=round((time.perf_counter() - began) * 1000, 3),
        ttft_ms=round(ttft * 1000, 3),
        status=status,
        error=error,
        failovers=failovers,
        stream=chat.stream,
        api=api,
    )


def raise_for(event: Error) -> ApiError:
    return error_from_status(event.status, event.message, event.code, event.retry_after)
