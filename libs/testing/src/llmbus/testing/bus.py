"""An in-memory twin of the bus, for handler unit tests with no sockets.

`InMemoryBus` implements the `llmbus.bus.Bus` protocol the way NATS and `NatsBus` behave
where handlers can tell the difference:

- subjects match with `*` (one token) and `>` (the rest); every plain subscription gets a
  message, one member of each queue group gets it (round robin here, random in NATS:
  tests should not depend on which member);
- a publish with a reply subject that no subscription matches comes back to the reply
  subject as an empty message with header `Status: 503` (NATS's no-responders);
- callbacks of one subscription run one after another, in publish order; `subscribe`
  decodes with the topic's codec and runs each handler as its own task, bounded by
  `concurrency`, answering a malformed message with a 400 and a failed handler with a
  500 error reply, as `NatsBus` does;
- every message travels as bytes through the real codecs, so an encoding bug shows.

Several services share one server: `bus.peer()` is another connection to it (its own
subscriptions, tasks and `connected` state). `settle()` waits until every message sent
so far has been handled, so a test can publish, settle and assert without sleeping.
`disconnect()` and `reconnect()` stand for a lost NATS connection. Tracing is left out:
trace context travels in headers that no handler reads.

The model is faststream's `TestNatsBroker` (airtai/faststream `faststream/nats/testing.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from llmbus.bus import (
    BusTimeout,
    BusUnavailable,
    Delivery,
    NoResponders,
    Pace,
    RemoteError,
    Subscription,
    is_no_responders,
)
from llmbus.bus.dispatch import dispatch
from llmbus.proto import ERROR_HEADER, BusError, Endpoint, Topic, error_codec

__all__ = ["InMemoryBus", "Message", "subject_matches"]

M = TypeVar("M")
R = TypeVar("R")

log = logging.getLogger(__name__)

_NO_RESPONDERS: Mapping[str, str] = {"Status": "503"}


@dataclass(frozen=True, slots=True)
class Message:
    """A message as a subscriber receives it (the `Delivery` protocol)."""

    subject: str
    reply: str = ""
    data: bytes = b""
    headers: Mapping[str, str] | None = None


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more tokens."""
    wanted = pattern.split(".")
    tokens = subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return i == len(wanted) - 1 and len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


class _Server:
    """What the NATS server does for the twin: routing, queue groups, no-responders, and
    a count of work in progress for `settle`."""

    def __init__(self) -> None:
        self.subscriptions: list[_Subscription] = []
        self._turns: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def next_id(self) -> int:
        return next(self._ids)

    def busy(self) -> None:
        self._busy += 1
        self._idle.clear()

    def done(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    async def settle(self) -> None:
        # Yield once more after going idle: a finished task may have scheduled a publish.
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)
            if self._busy == 0:
                return

    def route(self, message: Message) -> None:
        plain: list[_Subscription] = []
        groups: dict[str, list[_Subscription]] = {}
        for sub in self.subscriptions:
            if sub.owner.connected and subject_matches(sub.subject, message.subject):
                if sub.queue:
                    groups.setdefault(sub.queue, []).append(sub)
                else:
                    plain.append(sub)
        for queue, members in groups.items():
            turn = self._turns.get(queue, 0)
            self._turns[queue] = turn + 1
            plain.append(members[turn % len(members)])
        for sub in plain:
            sub.deliver(message)
        if not plain and message.reply:
            self.route(Message(subject=message.reply, headers=_NO_RESPONDERS))


class _Subscription:
    """One subscription: its callback runs for one message after another, in order."""

    def __init__(
        self,
        server: _Server,
        owner: InMemoryBus,
        subject: str,
        queue: str,
        callback: Callable[[Delivery], Awaitable[None]],
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.owner = owner
        self._server = server
        self._callback = callback
        self._pending: asyncio.Queue[Message] = asyncio.Queue()
        self._pump = asyncio.create_task(self._run())

    def deliver(self, message: Message) -> None:
        self._server.busy()
        self._pending.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._pending.get()
            try:
                await self._callback(message)
            except Exception:
                log.exception("callback for %s failed", message.subject)
            finally:
                self._pending.task_done()
                self._server.done()

    async def unsubscribe(self, limit: int = 0) -> None:
        """Stop receiving; messages already delivered are dropped, as in nats-py."""
        if self in self._server.subscriptions:
            self._server.subscriptions.remove(self)
        while not self._pending.empty():
            self._pending.get_nowait()
            self._pending.task_done()
            self._server.done()
        self._pump.cancel()

    async def drain(self) -> None:
        """Stop receiving, but handle what was delivered first."""
        if self in self._server.subscriptions:
            self._server.subscriptions.remove(self)
        await self._pending.join()
        self._pump.cancel()


class InMemoryBus:
    """One connection to an in-memory NATS server (see the module docstring)."""

    def __init__(self, server: _Server | None = None) -> None:
        self._server = server or _Server()
        self._connected = True
        self._subscriptions: list[_Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling = 0

    def peer(self) -> InMemoryBus:
        """Another connection to the same server (another service)."""
        return InMemoryBus(self._server)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def handling(self) -> int:
        return self._handling

    def disconnect(self) -> None:
        """Lose the connection: publishes fail with BusUnavailable, nothing is received."""
        self._connected = False

    def reconnect(self) -> None:
        """Get the connection back; subscriptions resume (messages sent meanwhile are lost)."""
        self._connected = True

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every message published so far, on any connection, and every
        message those handlers published in turn, has been handled."""
        async with asyncio.timeout(timeout):
            await self._server.settle()

    def new_inbox(self) -> str:
        return f"_INBOX.{self._server.next_id()}"

    async def publish(
        self,
        topic: Topic[M],
        message: M,
        *,
        reply: str = "",
        traced: bool = True,
        pace: Pace = "pass",
        **tokens: str,
    ) -> None:
        await self.publish_raw(topic.subject(**tokens), topic.codec.encode(message), reply=reply)

    async def publish_raw(
        self, subject: str, data: bytes, *, reply: str = "", traced: bool = False, pace: Pace = "pass"
    ) -> None:
        self._send(Message(subject=subject, reply=reply, data=data))

    def _send(self, message: Message) -> None:
        if not self._connected:
            raise BusUnavailable(f"cannot publish on {message.subject}: disconnected")
        self._server.route(message)

    async def request(self, endpoint: Endpoint[M, R], message: M, *, timeout: float, **tokens: str) -> R:
        subject = endpoint.subject(**tokens)
        inbox = self.new_inbox()
        answer: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()

        async def on_reply(delivery: Delivery) -> None:
            if not answer.done():
                answer.set_result(delivery)

        sub = await self.subscribe_raw(inbox, on_reply)
        try:
            self._send(Message(subject=subject, reply=inbox, data=endpoint.codec.encode(message)))
            try:
                async with asyncio.timeout(timeout):
                    reply = await answer
            except TimeoutError:
                raise BusTimeout(subject, timeout) from None
        finally:
            await sub.unsubscribe()
        if is_no_responders(reply):
            raise NoResponders(subject)
        if reply.headers and ERROR_HEADER in reply.headers:
            error = error_codec.decode(reply.data)
            raise RemoteError(error.status, error.code, error.message)
        return endpoint.reply.decode(reply.data)

    async def respond(self, delivery: Delivery, endpoint: Endpoint[Any, R], message: R) -> None:
        if delivery.reply:
            await self.publish_raw(delivery.reply, endpoint.reply.encode(message))

    async def respond_error(self, delivery: Delivery, error: BusError) -> None:
        if not delivery.reply:
            return
        try:
            self._send(
                Message(
                    subject=delivery.reply, data=error_codec.encode(error), headers={ERROR_HEADER: error.code}
                )
            )
        except BusUnavailable:
            log.warning("cannot send an error reply: no connection")

    async def subscribe(
        self,
        topic: Topic[M],
        handler: Callable[[M, Delivery], Awaitable[None]],
        *,
        queue: str = "",
        concurrency: int = 1024,
        subject: str | None = None,
        eager: bool = False,  # every handler is a task here: the twin has no parse to run it in
    ) -> Subscription:
        limit = asyncio.Semaphore(concurrency)
        codec = topic.codec
        server = self._server

        async def run(delivery: Delivery) -> None:
            try:
                await dispatch(self, codec, handler, delivery)
            finally:
                self._handling -= 1
                limit.release()
                server.done()

        async def on_message(delivery: Delivery) -> None:
            self._handling += 1
            await limit.acquire()
            server.busy()
            task = asyncio.create_task(run(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return await self.subscribe_raw(subject or topic.wildcard(), on_message, queue=queue)

    async def subscribe_raw(
        self, subject: str, callback: Callable[[Delivery], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        sub = _Subscription(self._server, self, subject, queue, callback)
        self._server.subscriptions.append(sub)
        self._subscriptions.append(sub)
        return sub

    async def subscribe_direct(
        self, subject: str, callback: Callable[[Delivery], None], *, queue: str = ""
    ) -> Subscription:
        async def deliver(msg: Delivery) -> None:
            callback(msg)

        return await self.subscribe_raw(subject, deliver, queue=queue)

    async def flush(self, timeout: int = 2) -> None:
        """Every message published so far has reached its subscriptions (NATS: the server
        has it)."""
        if not self._connected:
            raise BusUnavailable("flush failed: disconnected")
        await asyncio.sleep(0)

    async def drain(self, timeout: float = 5.0) -> None:
        """Stop taking messages, handle those delivered, wait for running handlers, close."""
        try:
            async with asyncio.timeout(timeout):
                for sub in self._subscriptions:
                    await sub.drain()
        except TimeoutError:
            for sub in self._subscriptions:
                await sub.unsubscribe()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        self._subscriptions.clear()
        self._connected = False
