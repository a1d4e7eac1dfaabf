"""A durable JetStream stream and the pull consumer a service's replicas share.

Publishers need nothing of this: a core publish on the stream's subject is captured by
the server (no acknowledgement awaited, so publishing costs what any publish costs).
The reading service creates the stream and its consumer when it starts, idempotently
(an existing stream takes the configured retention; an existing consumer is used as it
is), and every replica pulls from the same durable consumer: JetStream hands each
message to one of them, and one that is not acknowledged within `ack_wait` (its reader
crashed) goes out again.

nats-py's JetStream exceptions never pass this module's boundary: a failed start is
`BusUnavailable`, a fetch with nothing to read is an empty batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.errors import Error as JetStreamError

from llmbus.bus.client import NatsBus
from llmbus.bus.errors import BusUnavailable

__all__ = ["DurableConsumer", "StreamMessage"]


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message read from the stream; `ack()` it once its effect is stored."""

    data: bytes
    sequence: int
    """Its sequence number in the stream (unique, increasing)."""
    deliveries: int
    """1 the first time it is read, more when it is read again after a reader failed."""
    _reply: str

    def ack_subject(self) -> str:
        return self._reply


class DurableConsumer:
    """The stream `stream` of `subject` (file storage, messages kept `max_age` seconds)
    and the durable pull consumer `durable` on it."""

    def __init__(
        self,
        bus: NatsBus,
        *,
        stream: str,
        subject: str,
        durable: str,
        max_age: float,
        ack_wait: float = 30.0,
        max_ack_pending: int = 20_000,
    ) -> None:
        self._nc = bus.nc
        self._js = bus.nc.jetstream()
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.max_age = max_age
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self._sub: JetStreamContext.PullSubscription | None = None

    @property
    def started(self) -> bool:
        return self._sub is not None

    async def start(self) -> None:
        """Create or update the stream, create the consumer unless it exists, subscribe
        (again, after a failure: the old subscription is dropped)."""
        await self.stop()
        config = StreamConfig(
            name=self.stream, subjects=[self.subject], storage=StorageType.FILE, max_age=self.max_age
        )
        try:
            try:
                await self._js.add_stream(config)
            except BadRequestError:  # it exists with other settings (another retention)
                await self._js.update_stream(config)
            self._sub = await self._js.pull_subscribe(
                self.subject,
                durable=self.durable,
                stream=self.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait,
                    max_ack_pending=self.max_ack_pending,
                ),
            )
        except (JetStreamError, NatsError, TimeoutError, ConnectionClosedError) as exc:
            raise BusUnavailable(f"cannot open the JetStream stream {self.stream}: {exc}") from None

    async def fetch(self, batch: int, timeout: float) -> list[StreamMessage]:
        """Up to `batch` messages, waiting at most `timeout` seconds for the first; an
        empty list when none came."""
        sub = self._sub
        if sub is None:
            raise RuntimeError("start() the consumer first")
        try:
            msgs = await sub.fetch(batch, timeout=timeout)
        except TimeoutError:  # nats-py's own, and asyncio's, which fetch raises too
            return []
        except NotFoundError:
            raise BusUnavailable(f"the consumer {self.durable} of {self.stream} is gone") from None
        except (JetStreamError, NatsError, ConnectionClosedError) as exc:
            raise BusUnavailable(f"cannot read the JetStream stream {self.stream}: {exc}") from None
        out = []
        for msg in msgs:
            meta = msg.metadata
            out.append(StreamMessage(msg.data, meta.sequence.stream, meta.num_delivered, msg.reply))
        return out

    async def ack(self, messages: list[StreamMessage]) -> None:
        """Acknowledge `messages` (one publish each, no reply awaited)."""
        try:
            for message in messages:
                await self._nc.publish(message.ack_subject(), b"+ACK")
        except (NatsError, ConnectionClosedError) as exc:
            raise BusUnavailable(f"cannot acknowledge on {self.stream}: {exc}") from None

    async def stop(self) -> None:
        """Stop pulling (the consumer stays: it is durable)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except (NatsError, ConnectionClosedError):
                pass
