"""One chat request on the bus, as the edge sees it: publish the route request, then read
the reply stream with its sequence numbers, heartbeats and timeouts.

Failure modes become client errors: nobody listening (503 at once), no worker taking the
request within the accept timeout (503), a silent worker (504), lost frames (502)."""

from __future__ import annotations

import time
import uuid

import msgspec

from llmbus.api import ApiError, GatewayTimeout, Unavailable, UpstreamFailed, error_from_status
from llmbus.bus import Bus, BusFailure, Delivery, Inbox, StreamInbox, is_no_responders
from llmbus.edge.quota import Reservation
from llmbus.edge.usage import UsageBatcher
from llmbus.proto import (
    CANCEL,
    EVENTS,
    ROUTE,
    AnyEvent,
    CancelRequest,
    ChatRequest,
    Client,
    Error,
    Heartbeat,
    Needs,
    RouteRequest,
    Usage,
    chat_codec,
)

__all__ = ["Call", "raise_for", "report_usage"]


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
        tokens: int = 0,
        reservation: Reservation | None = None,
        usage: UsageBatcher | None = None,
    ) -> None:
        self.bus = bus
        self.usage = usage
        """Where the request is counted when it ends (per key, model and day)."""
        self.chat = chat
        self.client = client
        self.tokens = tokens
        """The estimate of the tokens the request may use, for provider limits."""
        self.reservation = reservation
        """What the client key's limits reserved, settled when the request ends."""
        self.request_id = uuid.uuid4().hex
        self._inbox_cm = inbox.open(self.request_id)
        self.reply, self._queue = self._inbox_cm.__enter__()
        self._accept_timeout = accept_timeout
        self._idle_timeout = idle_timeout
        self._deadline = time.monotonic() + request_timeout
        self._deadline_ms = int((time.time() + request_timeout) * 1000)
        self._seq = 0
        self.accepted = False
        self.finished = False
        self._closed = False

    async def start(self) -> None:
        chat = self.chat
        request = RouteRequest(
            request_id=self.request_id,
            model=chat.model,
            reply=self.reply,
            deadline=self._deadline_ms,
            client=self.client,
            needs=Needs(streaming=chat.stream, tools=bool(chat.tools), vision=chat.has_images()),
            body=msgspec.Raw(chat_codec.encode(chat)),
            tokens=self.tokens,
        )
        try:
            await self.bus.publish(ROUTE, request, reply=self.reply)
        except BusFailure:
            raise Unavailable("the message bus is unavailable", code="bus_unavailable") from None

    async def next(self) -> AnyEvent:
        """The next event other than a heartbeat; raises ApiError when the stream fails."""
        queue: StreamInbox = self._queue
        while True:
            msg = queue.get_nowait() if not queue.empty() else await self._wait(queue)
            event = self._take(msg)
            if event is not None:
                return event

    def next_nowait(self) -> AnyEvent | None:
        """The next event if its frame has arrived already, else None (as `next`
        otherwise)."""
        queue: StreamInbox = self._queue
        while not queue.empty():
            event = self._take(queue.get_nowait())
            if event is not None:
                return event
        return None

    def _take(self, msg: Delivery) -> AnyEvent | None:
        """The frame's event, None for a heartbeat; raises ApiError for a broken stream."""
        if is_no_responders(msg):
            raise Unavailable(
                f"no llmbus worker is available to serve `{self.chat.model}` (router or worker down)",
                code="no_worker_available",
            )
        try:
            event = EVENTS.decode(msg.data)
        except msgspec.DecodeError:
            raise UpstreamFailed("a malformed frame arrived on the reply stream", code="bad_frame") from None
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
        return event

    async def _wait(self, queue: StreamInbox) -> Delivery:
        remaining = self._deadline - time.monotonic()
        timeout = min(self._idle_timeout if self.accepted else self._accept_timeout, remaining)
        try:
            return await queue.get_within(timeout)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                raise GatewayTimeout(
                    "the request did not finish within its deadline", code="deadline_exceeded"
                ) from None
            if not self.accepted:
                raise Unavailable(
                    f"no llmbus worker took the request for `{self.chat.model}` "
                    f"within {self._accept_timeout:g}s",
                    code="no_worker_available",
                ) from None
            raise GatewayTimeout("the worker stopped responding", code="worker_timeout") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
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


def report_usage(call: Call, first: AnyEvent | None, usage: Usage | None, ok: bool) -> None:
    """Count the ended request for its key (no I/O: the batcher reports to auth)."""
    if call.usage is not None:
        call.usage.add(call.client.id, call.chat.model, first, usage, ok)


def raise_for(event: Error) -> ApiError:
    return error_from_status(event.status, event.message, event.code, event.retry_after)
