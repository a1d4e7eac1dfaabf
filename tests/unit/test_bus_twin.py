"""The in-memory bus twin behaves as NATS and `NatsBus` do where handlers can tell:
subject wildcards, queue groups, no-responders, error replies, a lost connection.
(`tests/integration/test_bus.py` holds the same expectations against a real server.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from llmbus.bus import BusUnavailable, Delivery, NoResponders, RemoteError
from llmbus.proto import AUTH_KEY_VERIFY, EXEC, KeyVerifyReply, KeyVerifyRequest
from llmbus.testing import InMemoryBus
from llmbus.testing.bus import subject_matches


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("llm.v1.exec.*", "llm.v1.exec.openai", True),
        ("llm.v1.exec.*", "llm.v1.exec", False),
        ("llm.v1.exec.*", "llm.v1.exec.openai.x", False),
        ("llm.>", "llm.v1.exec.openai", True),
        ("llm.>", "llm", False),
        ("_INBOX.7.*", "_INBOX.7.req-1", True),
    ],
)
def test_subjects_match_with_nats_wildcards(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


async def test_one_member_of_a_queue_group_gets_each_message_and_plain_subscribers_all() -> None:
    bus = InMemoryBus()
    got: dict[str, list[str]] = {"a": [], "b": [], "spy": []}

    def keep(name: str) -> Callable[[Delivery], Awaitable[None]]:
        async def callback(delivery: Delivery) -> None:
            got[name].append(delivery.data.decode())

        return callback

    await bus.subscribe_raw("work", keep("a"), queue="workers")
    await bus.peer().subscribe_raw("work", keep("b"), queue="workers")
    await bus.subscribe_raw("work", keep("spy"))
    for i in range(4):
        await bus.publish_raw("work", str(i).encode())
    await bus.settle()

    assert sorted(got["a"] + got["b"]) == ["0", "1", "2", "3"]
    assert got["a"], "each member takes a share"
    assert got["b"], "each member takes a share"
    assert got["spy"] == ["0", "1", "2", "3"]


async def test_a_publish_nobody_hears_comes_back_to_its_reply_subject_as_a_503() -> None:
    bus = InMemoryBus()
    frames: list[Delivery] = []

    async def keep(delivery: Delivery) -> None:
        frames.append(delivery)

    inbox = bus.new_inbox()
    await bus.subscribe_raw(inbox, keep)
    await bus.publish_raw(EXEC.subject(provider="nobody"), b"x", reply=inbox)
    await bus.settle()

    [frame] = frames
    assert (frame.subject, frame.data, frame.headers) == (inbox, b"", {"Status": "503"})
    with pytest.raises(NoResponders):
        await bus.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash="h"), timeout=1)


async def test_request_gets_the_typed_reply_or_the_handlers_error() -> None:
    bus = InMemoryBus()
    server = bus.peer()

    async def verify(request: KeyVerifyRequest, delivery: Delivery) -> None:
        if request.key_hash == "boom":
            raise RuntimeError("handler bug")
        await server.respond(delivery, AUTH_KEY_VERIFY, KeyVerifyReply(valid=request.key_hash == "good"))

    await server.subscribe(AUTH_KEY_VERIFY, verify, queue=AUTH_KEY_VERIFY.queue)

    assert await bus.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash="good"), timeout=1) == KeyVerifyReply(
        valid=True
    )
    with pytest.raises(RemoteError) as caught:
        await bus.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash="boom"), timeout=1)
    assert (caught.value.status, caught.value.code) == (500, "internal_error")


async def test_a_malformed_message_is_answered_with_a_400_and_never_reaches_the_handler() -> None:
    bus = InMemoryBus()
    seen: list[KeyVerifyRequest] = []

    async def verify(request: KeyVerifyRequest, delivery: Delivery) -> None:
        seen.append(request)

    await bus.peer().subscribe(AUTH_KEY_VERIFY, verify)
    replies: list[Delivery] = []

    async def keep(delivery: Delivery) -> None:
        replies.append(delivery)

    inbox = bus.new_inbox()
    await bus.subscribe_raw(inbox, keep)
    await bus.publish_raw(AUTH_KEY_VERIFY.subject(), b"\xc1 not msgpack", reply=inbox)
    await bus.settle()

    assert seen == []
    [reply] = replies
    assert reply.headers == {"Llmbus-Error": "bad_message"}


async def test_a_lost_connection_fails_publishes_and_hears_nothing() -> None:
    bus = InMemoryBus()
    listener = bus.peer()
    heard: list[Delivery] = []

    async def keep(delivery: Delivery) -> None:
        heard.append(delivery)

    await listener.subscribe_raw("x", keep)
    listener.disconnect()
    await bus.publish_raw("x", b"lost")
    with pytest.raises(BusUnavailable):
        await listener.publish_raw("x", b"y")
    listener.reconnect()
    await bus.publish_raw("x", b"heard")
    await bus.settle()

    assert [d.data for d in heard] == [b"heard"]
