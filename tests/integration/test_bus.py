"""The bus mechanics the design relies on, against a real nats-server."""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import nats.errors
import pytest

from llmbus.bus import (
    Bus,
    BusTimeout,
    BusUnavailable,
    Delivery,
    Inbox,
    NoResponders,
    RemoteError,
    connect,
    is_no_responders,
)
from llmbus.proto import (
    EVENTS,
    EXEC,
    BusError,
    Client,
    Delta,
    ExecRequest,
    KeyVerifyReply,
    KeyVerifyRequest,
    Target,
)
from llmbus.proto.subjects import Codec, Endpoint, Topic

# A request/reply endpoint of these tests alone: the session's NATS server is shared with
# the end-to-end stack, whose auth service answers on the real subjects.
VERIFY: Endpoint[KeyVerifyRequest, KeyVerifyReply] = Endpoint(
    f"test.{secrets.token_hex(4)}.keys.verify", Codec(KeyVerifyRequest), reply=Codec(KeyVerifyReply)
)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="test")
    yield bus
    await bus.drain()


def _exec(reply: str) -> ExecRequest:
    return ExecRequest(
        request_id="r",
        model="m",
        reply=reply,
        deadline=0,
        client=Client(id="c"),
        body=msgspec.Raw(b"\x80"),
        target=Target(provider="nobody-serves-this", credential="k", upstream_model="m"),
    )


async def test_publish_to_a_subject_without_subscribers_returns_503_to_the_inbox(bus: Bus) -> None:
    inbox = Inbox(bus)
    await inbox.start()
    with inbox.open("r") as (reply, queue):
        await bus.publish(EXEC, _exec(reply), reply=reply, provider="nobody-serves-this")
        message = await asyncio.wait_for(queue.get(), 2)
    assert is_no_responders(message)


async def test_inbox_delivers_frames_in_publish_order(bus: Bus) -> None:
    inbox = Inbox(bus)
    await inbox.start()
    with inbox.open("ordered") as (reply, queue):
        for seq in range(500):
            await bus.publish_raw(reply, EVENTS.encode(Delta(seq=seq, text="x")))
        seqs = [EVENTS.decode((await asyncio.wait_for(queue.get(), 2)).data).seq for _ in range(500)]
    assert seqs == list(range(500))


async def test_a_direct_subscription_delivers_as_read_and_keeps_nothing_pending(bus: Bus) -> None:
    """Frames handed straight to the callback: none may count as pending in nats-py, or a
    long-lived inbox would one day be refused as a slow consumer (its limits are 512 Ki
    messages and 128 MiB of pending data)."""
    subject = f"test.{secrets.token_hex(4)}.direct"
    seen: list[bytes] = []
    failing = [True]

    def callback(msg: Delivery) -> None:
        if failing[0]:
            failing[0] = False
            raise RuntimeError("a failing callback loses its message, not the subscription")
        seen.append(msg.data)

    sub = await bus.subscribe_direct(subject, callback)
    payloads = [b"%06d" % n + b"x" * 4096 for n in range(1001)]
    for payload in payloads:
        await bus.publish_raw(subject, payload)
    await bus.flush()
    for _ in range(100):
        if len(seen) == 1000:
            break
        await asyncio.sleep(0.02)
    assert seen == payloads[1:]
    assert sub.pending_bytes == 0  # type: ignore[attr-defined]
    assert sub.pending_msgs == 0  # type: ignore[attr-defined]


async def test_request_reply_round_trip_and_error_header(bus: Bus) -> None:
    async def handler(request: KeyVerifyRequest, delivery: Delivery) -> None:
        if request.key_hash == "bad":
            await bus.respond_error(delivery, BusError(status=503, code="down", message="store down"))
        else:
            await bus.respond(delivery, VERIFY, KeyVerifyReply(valid=True, client=Client(id="c1")))

    await bus.subscribe(VERIFY, handler, queue="auth")
    reply = await bus.request(VERIFY, KeyVerifyRequest(key_hash="good"), timeout=2)
    assert reply.client == Client(id="c1")
    with pytest.raises(RemoteError) as caught:
        await bus.request(VERIFY, KeyVerifyRequest(key_hash="bad"), timeout=2)
    assert (caught.value.status, caught.value.code) == (503, "down")


async def test_request_without_responders_fails_at_once(nats_url: str) -> None:
    bus = await connect(nats_url, name="lonely")
    try:
        with pytest.raises(NoResponders):
            await bus.request(
                VERIFY,
                KeyVerifyRequest(key_hash="x"),
                timeout=2,
            )
    finally:
        await bus.drain()


async def test_request_to_a_silent_handler_times_out(bus: Bus) -> None:
    async def silent(request: KeyVerifyRequest, delivery: Delivery) -> None:
        await asyncio.sleep(0.6)

    sub = await bus.subscribe(VERIFY, silent, subject=VERIFY.pattern)
    try:
        with pytest.raises(BusTimeout):
            await bus.request(VERIFY, KeyVerifyRequest(key_hash="x"), timeout=0.3)
    finally:
        await sub.unsubscribe()


async def test_slow_handlers_run_concurrently(bus: Bus) -> None:
    running = 0
    peak = 0

    async def slow(request: KeyVerifyRequest, delivery: Delivery) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        await bus.respond(delivery, VERIFY, KeyVerifyReply(valid=False))

    sub = await bus.subscribe(VERIFY, slow, subject=VERIFY.pattern)
    try:
        await asyncio.gather(
            *(bus.request(VERIFY, KeyVerifyRequest(key_hash=str(i)), timeout=2) for i in range(5))
        )
    finally:
        await sub.unsubscribe()
    assert peak == 5


async def test_messages_beyond_the_concurrency_wait_their_turn_in_order(bus: Bus) -> None:
    running = 0
    peak = 0
    order: list[str] = []

    async def slow(request: KeyVerifyRequest, delivery: Delivery) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(request.key_hash)
        await asyncio.sleep(0.05)
        running -= 1
        await bus.respond(delivery, VERIFY, KeyVerifyReply(valid=False))

    sub = await bus.subscribe(VERIFY, slow, subject=VERIFY.pattern, concurrency=2)
    try:
        await asyncio.gather(
            *(bus.request(VERIFY, KeyVerifyRequest(key_hash=str(i)), timeout=5) for i in range(8))
        )
    finally:
        await sub.unsubscribe()
    assert peak == 2
    assert sorted(order) == [str(i) for i in range(8)]


@pytest.mark.parametrize("yielding", [True, False])
async def test_publishes_arrive_whole_and_in_order_one_per_loop_pass_or_in_a_burst(
    bus: Bus, yielding: bool
) -> None:
    """The client writes what is pending at the end of each loop pass; a burst larger
    than the socket takes at once (16 MiB) waits for it to drain instead."""
    subject = f"test.{secrets.token_hex(4)}.order"
    seen: list[bytes] = []
    await bus.subscribe_direct(subject, lambda msg: seen.append(msg.data[:6]))
    expected = [b"%06d" % n for n in range(2048)]
    for head in expected:
        await bus.publish_raw(subject, head + b"x" * 8192)
        if yielding:
            await asyncio.sleep(0)
    await bus.flush(timeout=10)
    for _ in range(200):
        if len(seen) == len(expected):
            break
        await asyncio.sleep(0.02)
    assert seen == expected


async def test_lazy_frames_share_a_write_and_an_eager_one_takes_them_along(nats_url: str) -> None:
    """With a coalescing window, "window" publishes wait for it (or for one of another
    pace, which writes them first: order kept); without one, they go at once."""
    sender = await connect(nats_url, name="test-lazy")
    receiver = await connect(nats_url, name="test-lazy-receiver")
    try:
        subject = f"test.{secrets.token_hex(4)}.lazy"
        seen: list[bytes] = []
        await receiver.subscribe_direct(subject, lambda msg: seen.append(msg.data))
        await receiver.flush()

        async def arrived(count: int, within: float) -> bool:
            for _ in range(int(within / 0.01)):
                if len(seen) >= count:
                    return True
                await asyncio.sleep(0.01)
            return len(seen) >= count

        sender.coalesce(0.3)
        await sender.publish_raw(subject, b"lazy-1", pace="window")
        await asyncio.sleep(0)
        await sender.publish_raw(subject, b"lazy-2", pace="window")
        assert not await arrived(1, 0.1)  # still waiting for company
        assert await arrived(2, 2)  # the window ended
        await sender.publish_raw(subject, b"lazy-3", pace="window")
        await asyncio.sleep(0)
        await sender.publish_raw(subject, b"eager")
        assert await arrived(4, 0.2)  # well before the window: the eager one took it along
        sender.coalesce(0)
        await sender.publish_raw(subject, b"lazy-4", pace="window")
        assert await arrived(5, 0.2)
        assert seen == [b"lazy-1", b"lazy-2", b"lazy-3", b"eager", b"lazy-4"]
    finally:
        await sender.drain()
        await receiver.drain()


async def test_a_now_publish_is_written_before_the_loop_pass_ends(nats_url: str) -> None:
    """A "pass" publish waits for the end of the loop's pass; a "now" one is on the wire
    at once, and takes what waits before it along (a "window" frame too), in order. The
    receiver runs on its own thread and loop, so it reads while this loop is held up."""
    subject = f"test.{secrets.token_hex(4)}.now"
    seen: list[bytes] = []
    ready = threading.Event()
    stop = threading.Event()

    def receive() -> None:
        async def run() -> None:
            receiver = await connect(nats_url, name="test-now-receiver")
            await receiver.subscribe_direct(subject, lambda msg: seen.append(msg.data))
            await receiver.flush()
            ready.set()
            await asyncio.to_thread(stop.wait, 30)
            await receiver.drain()

        asyncio.run(run())

    thread = threading.Thread(target=receive)
    thread.start()
    sender = await connect(nats_url, name="test-now")
    try:
        assert await asyncio.to_thread(ready.wait, 10)
        sender.coalesce(5.0)
        await sender.publish_raw(subject, b"pass")
        time.sleep(0.3)  # noqa: ASYNC251 (holding this loop's pass on purpose)
        assert seen == []  # the pass has not ended: nothing written
        await asyncio.sleep(0)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == [b"pass"]
        await sender.publish_raw(subject, b"window", pace="window")
        await sender.publish_raw(subject, b"now", pace="now")
        time.sleep(0.3)  # noqa: ASYNC251
        assert seen == [b"pass", b"window", b"now"]  # within the same pass
    finally:
        await sender.drain()
        stop.set()
        await asyncio.to_thread(thread.join, 10)


@pytest.mark.parametrize(("eager", "together"), [(False, [3, 3, 2]), (True, [2, 3, 2])])
async def test_a_handler_knows_how_many_messages_its_connection_is_handling(
    nats_url: str, eager: bool, together: list[int]
) -> None:
    """`handling` counts the handled and the waiting: a message read alone is the only
    one (its handler's publishes may go at once); messages read together see each other,
    those not parsed yet as one."""
    subject = f"test.{secrets.token_hex(4)}.handling"
    topic = Topic(subject, Codec(KeyVerifyRequest))
    receiver = await connect(nats_url, name="test-handling")
    sender = await connect(nats_url, name="test-handling-sender")
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(request: KeyVerifyRequest, delivery: Delivery) -> None:
        seen.append(receiver.handling)
        if request.key_hash == "hold":
            await done.wait()
        if len(seen) == 4:
            done.set()

    await receiver.subscribe(topic, handler, concurrency=2, eager=eager)
    await receiver.flush()
    try:
        await sender.publish(topic, KeyVerifyRequest(key_hash="alone"))
        await sender.flush()
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == [1]
        # Three in one write, read together. As tasks: "hold" keeps its place until the
        # last has run; "c" waits for one (concurrency 2), counted all the same until "b"
        # ends. Eager, each run as its message is parsed: "hold" sees the messages still
        # unparsed after it (counted as one), "b" sees "hold", itself and the unparsed
        # "c", and "c" (whose place "b", finished, left) sees "hold" and itself.
        for key in ("hold", "b", "c"):
            await sender.publish(topic, KeyVerifyRequest(key_hash=key))
        await sender.flush()
        await asyncio.wait_for(done.wait(), 5)
        assert seen[1:] == together
        for _ in range(100):
            if receiver.handling == 0:
                break
            await asyncio.sleep(0.01)
        assert receiver.handling == 0
    finally:
        await sender.drain()
        await receiver.drain()


async def test_a_publish_with_no_trace_context_carries_no_header_block(bus: Bus, nats_url: str) -> None:
    """Nothing to propagate (no span current): the message goes as a plain `MSG`, not an
    `HMSG` with an empty header block that every receiver would parse."""
    subject = f"test.{secrets.token_hex(4)}.plain"
    url = urlsplit(nats_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        await reader.readline()  # INFO
        connect = {"user": url.username, "pass": url.password, "verbose": False, "headers": True}
        writer.write(f"CONNECT {json.dumps(connect)}\r\nSUB {subject} 1\r\nPING\r\n".encode())
        assert await asyncio.wait_for(reader.readline(), 2) == b"PONG\r\n"
        await bus.publish(Topic(subject, Codec(KeyVerifyRequest)), KeyVerifyRequest(key_hash="k"))
        line = await asyncio.wait_for(reader.readline(), 2)
        assert line.startswith(f"MSG {subject} 1 ".encode()), line
    finally:
        writer.close()


_MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="")


async def test_eager_handlers_run_as_parsed_each_in_a_context_of_its_own(
    nats_url: str,
) -> None:
    """An eager handler that waits for nothing runs without a task; one that waits is
    finished by one; what either sets in its context stays its own."""
    subject = f"test.{secrets.token_hex(4)}.eager"
    topic = Topic(subject, Codec(KeyVerifyRequest))
    receiver = await connect(nats_url, name="test-eager")
    sender = await connect(nats_url, name="test-eager-sender")
    seen: list[tuple[str, str, bool]] = []
    done = asyncio.Event()

    async def handler(request: KeyVerifyRequest, delivery: Delivery) -> None:
        before = _MARK.get()
        _MARK.set(request.key_hash)
        if request.key_hash == "waits":
            await asyncio.sleep(0.01)
        seen.append((request.key_hash, before, asyncio.current_task() is not None))
        if len(seen) == 3:
            done.set()

    await receiver.subscribe(topic, handler, eager=True)
    await receiver.flush()
    try:
        for key in ("quick", "waits", "after"):
            await sender.publish(topic, KeyVerifyRequest(key_hash=key))
        await sender.flush()
        await asyncio.wait_for(done.wait(), 5)
        # No handler saw another's mark; only the one that waited ran in a task.
        assert sorted(seen) == [("after", "", False), ("quick", "", False), ("waits", "", True)]
        assert _MARK.get() == ""
    finally:
        await sender.drain()
        await receiver.drain()


async def test_a_publish_that_cannot_be_queued_at_once_goes_nats_pys_way(nats_url: str) -> None:
    """Publishes are queued without a coroutine while the connection can take them; one it
    cannot (too large for the server, or a connection that is gone) fails as nats-py's own
    publish does, mapped to the bus's errors."""
    bus = await connect(nats_url, name="test-publish-paths")
    subject = f"test.{secrets.token_hex(4)}.paths"
    seen: list[bytes] = []
    await bus.subscribe_direct(subject, lambda msg: seen.append(msg.data))
    await bus.flush()
    await bus.publish_raw(subject, b"queued", pace="now")
    with pytest.raises(nats.errors.MaxPayloadError):
        await bus.publish_raw(subject, b"x" * (bus.nc.max_payload + 1))
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == [b"queued"]
    await bus.drain()
    with pytest.raises(BusUnavailable):
        await bus.publish_raw(subject, b"too late")
