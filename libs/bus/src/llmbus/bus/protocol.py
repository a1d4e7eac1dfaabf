"""The bus as services see it: a Protocol that the NATS client (`NatsBus`) and the
in-memory twin (`llmbus.testing.InMemoryBus`) both implement.

Handlers are typed against `Bus`, `Delivery` and `Subscription` from here, so they can
run over the twin in unit tests and over NATS in production without knowing which, and
no nats-py type appears in a service's signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from llmbus.proto import BusError, Endpoint, Topic

__all__ = ["Bus", "Delivery", "Pace", "Subscription"]

M = TypeVar("M")
R = TypeVar("R")

Pace = Literal["now", "pass", "window"]
"""When a publish is written to the connection:

- `"pass"` (the default): at the end of the event loop's current pass, in one write with
  the pass's other publishes;
- `"now"`: at once, with everything pending before it (a streamed request's first frames,
  which its client's first token waits on: behind a busy pass, they would wait for all of
  it);
- `"window"`: up to the coalescing window later (`NatsBus.coalesce`: a stream's middle
  chunks), unless another publish takes it along first.

Order is kept whatever the pace: a publish writes everything pending before it."""


class Delivery(Protocol):
    """A received message. `reply` is empty when the sender expects no answer."""

    @property
    def subject(self) -> str: ...

    @property
    def reply(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str] | None: ...


class Subscription(Protocol):
    async def unsubscribe(self, limit: int = 0) -> None: ...


class Bus(Protocol):
    """Typed publish, request/reply and subscriptions (see `NatsBus` for the semantics)."""

    @property
    def connected(self) -> bool: ...

    @property
    def handling(self) -> int:
        """Messages of this connection's `subscribe` subscriptions being handled or
        waiting for a place (those read but not parsed yet count as one): 1 inside a
        handler means it is the only one (what it publishes would share its write with
        nothing, so it may as well go `"now"`)."""
        ...

    def new_inbox(self) -> str: ...

    async def publish(
        self,
        topic: Topic[M],
        message: M,
        *,
        reply: str = "",
        traced: bool = True,
        pace: Pace = "pass",
        **tokens: str,
    ) -> None: ...

    async def publish_raw(
        self, subject: str, data: bytes, *, reply: str = "", traced: bool = False, pace: Pace = "pass"
    ) -> None:
        """Publish encoded bytes (stream frames), written at `pace`."""
        ...

    async def request(self, endpoint: Endpoint[M, R], message: M, *, timeout: float, **tokens: str) -> R:
        """The reply to `message`; raises NoResponders, BusTimeout, BusUnavailable or
        RemoteError (the handler answered with an error)."""
        ...

    async def respond(self, delivery: Delivery, endpoint: Endpoint[Any, R], message: R) -> None: ...

    async def respond_error(self, delivery: Delivery, error: BusError) -> None: ...

    async def subscribe(
        self,
        topic: Topic[M],
        handler: Callable[[M, Delivery], Awaitable[None]],
        *,
        queue: str = "",
        concurrency: int = 1024,
        subject: str | None = None,
        eager: bool = False,
    ) -> Subscription:
        """Decode each message with the topic's codec and run `handler` as a task or,
        `eager`, at once up to its first wait (a task finishes it only if it waits)."""
        ...

    async def subscribe_raw(
        self, subject: str, callback: Callable[[Delivery], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """A plain subscription whose callback runs inline, one message after another."""
        ...

    async def subscribe_direct(
        self, subject: str, callback: Callable[[Delivery], None], *, queue: str = ""
    ) -> Subscription:
        """A subscription whose plain (not async) callback is called as each message is
        read off the connection: no task hop per message. The callback must not block."""
        ...

    async def flush(self, timeout: int = 2) -> None: ...

    async def drain(self, timeout: float = 5.0) -> None:
        """Stop taking messages, wait for running handlers, close the connection."""
        ...
