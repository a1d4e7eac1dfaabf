"""The worker's reply stream: which frames are written at once (`"now"`), which wait for
the end of the loop's pass (`"pass"`) and which may wait a moment to share a write
(`"window"`), by whether the request streams and whether others are in flight; and a
whole answer's frames of one loop pass sent as one message."""

from __future__ import annotations

import asyncio
import gc

import pytest

from llmbus.bus import Pace
from llmbus.proto import FRAMES, AnyEvent, Delta, Done, Error, Heartbeat, Started, Usage
from llmbus.testing import InMemoryBus
from llmbus.worker.emitter import HELD_BYTES, Emitter


class _Recorder(InMemoryBus):
    """The in-memory bus, remembering every raw publish: its frames' kinds and sequence
    numbers, and its pace."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[list[str], Pace]] = []
        self.seqs: list[int] = []

    async def publish_raw(
        self, subject: str, data: bytes, *, reply: str = "", traced: bool = False, pace: Pace = "pass"
    ) -> None:
        decoded = FRAMES.decode(data)
        events = decoded if isinstance(decoded, list) else [decoded]
        self.sent.append(([type(event).__name__ for event in events], pace))
        self.seqs += [event.seq for event in events]
        await super().publish_raw(subject, data, reply=reply, traced=traced, pace=pace)


ANSWER: list[AnyEvent] = [
    Started(seq=0, provider="p", model="m", credential="c"),
    Delta(seq=0, text="a"),
    Delta(seq=0, text="b"),
    Usage(seq=0, prompt_tokens=1, completion_tokens=2),
    Done(seq=0, finish_reason="stop"),
]
KINDS = ["Started", "Delta", "Delta", "Usage", "Done"]


def _emitter(bus: InMemoryBus, *, streamed: bool, in_flight: int) -> Emitter:
    return Emitter(bus, "_INBOX.edge.1", 1, "_INBOX.guard", streamed=streamed, in_flight=range(in_flight))


@pytest.mark.parametrize(
    ("in_flight", "sent"),
    [
        # Alone: the first delta goes at once with Started, the end at once with the rest.
        (1, [(["Started", "Delta"], "now"), (["Delta", "Usage", "Done"], "now")]),
        # Others in flight: Started goes at once, not behind their work, and the end with
        # the pass's other publishes.
        (3, [(["Started"], "now"), (["Delta"], "now"), (["Delta", "Usage", "Done"], "pass")]),
    ],
)
async def test_a_streams_frames_made_in_one_pass(in_flight: int, sent: list[tuple[list[str], Pace]]) -> None:
    bus = _Recorder()
    emitter = _emitter(bus, streamed=True, in_flight=in_flight)
    for event in ANSWER:
        await emitter.emit(event)
    assert bus.sent == sent
    assert bus.seqs == [1, 2, 3, 4, 5]
    await asyncio.sleep(0.01)  # the end of the pass finds nothing left to send
    assert len(bus.sent) == len(sent)


async def test_a_streams_frames_of_later_passes_share_a_message_and_may_wait_for_the_window() -> None:
    bus = _Recorder()
    emitter = _emitter(bus, streamed=True, in_flight=1)
    await emitter.emit(ANSWER[0])
    await asyncio.sleep(0.01)  # the upstream's first chunk is not here yet
    assert bus.sent == [(["Started"], "pass")]
    await emitter.emit(ANSWER[1])
    assert bus.sent[1:] == [(["Delta"], "now")]
    await emitter.emit(Delta(seq=0, text="b"))
    await emitter.emit(Delta(seq=0, text="c"))
    assert len(bus.sent) == 2  # held until the end of the pass
    await asyncio.sleep(0.01)
    assert bus.sent[2:] == [(["Delta", "Delta"], "window")]
    await emitter.emit(ANSWER[4])
    assert bus.sent[3:] == [(["Done"], "now")]
    assert bus.seqs == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("in_flight", "pace"), [(1, "now"), (3, "pass")])
async def test_a_whole_answer_made_in_one_pass_is_one_message(in_flight: int, pace: Pace) -> None:
    bus = _Recorder()
    emitter = _emitter(bus, streamed=False, in_flight=in_flight)
    for event in ANSWER:
        await emitter.emit(event)
    assert bus.sent == [(KINDS, pace)]
    assert bus.seqs == [1, 2, 3, 4, 5]
    assert emitter.seq == 6
    await asyncio.sleep(0.01)  # the end of the pass finds nothing left to send
    assert len(bus.sent) == 1


async def test_a_whole_answers_start_goes_at_the_end_of_its_pass_when_the_rest_is_late() -> None:
    bus = _Recorder()
    emitter = _emitter(bus, streamed=False, in_flight=1)
    await emitter.emit(ANSWER[0])
    assert bus.sent == []
    assert emitter.last_sent == 0.0  # held, not sent: the first heartbeat is still due
    await asyncio.sleep(0.01)  # the upstream's body is not here yet: the pass ends
    assert bus.sent == [(["Started"], "pass")]
    assert emitter.last_sent > 0
    for event in ANSWER[1:]:
        await emitter.emit(event)
    assert bus.sent[1:] == [(KINDS[1:], "now")]
    assert bus.seqs == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "last", [Heartbeat(seq=0), Error(seq=0, status=502, code="upstream", message="gone")]
)
async def test_a_heartbeat_or_an_error_takes_the_held_frames_along(last: AnyEvent) -> None:
    bus = _Recorder()
    emitter = _emitter(bus, streamed=False, in_flight=1)
    await emitter.emit(ANSWER[0])
    await emitter.emit(ANSWER[1])
    await emitter.emit(last)
    assert bus.sent == [(["Started", "Delta", type(last).__name__], "pass")]
    await asyncio.sleep(0.01)
    assert len(bus.sent) == 1


async def test_frames_held_when_the_stream_closes_are_dropped() -> None:
    """A closed stream has moved to another worker or lost its reader: nothing more of
    this worker's may reach the inbox."""
    bus = _Recorder()
    emitter = _emitter(bus, streamed=False, in_flight=1)
    await emitter.emit(ANSWER[0])
    emitter.close()
    await asyncio.sleep(0.01)
    assert bus.sent == []


async def test_held_frames_that_cannot_be_sent_leave_no_failed_task(caplog: pytest.LogCaptureFixture) -> None:
    """The bus gone when the pass ends: the frames are given up quietly, as a heartbeat's
    would be, not left as a task whose error nobody retrieves."""
    gc.collect()  # what earlier tests left behind is reported now, not below
    caplog.clear()
    bus = _Recorder()
    emitter = _emitter(bus, streamed=False, in_flight=1)
    await emitter.emit(ANSWER[0])
    bus.disconnect()
    await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)
    unretrieved = [r for r in caplog.records if "exception was never retrieved" in r.getMessage()]
    assert unretrieved == []


async def test_frames_held_in_a_long_pass_go_before_they_grow_past_the_limit() -> None:
    """An upstream's backlog parsed in one pass becomes several messages, each small
    enough for the bus, in order."""
    bus = _Recorder()
    emitter = _emitter(bus, streamed=True, in_flight=1)
    await emitter.emit(ANSWER[0])
    await emitter.emit(ANSWER[1])
    text = "x" * 1000
    count = 3 * HELD_BYTES // len(text)
    for _ in range(count):
        await emitter.emit(Delta(seq=0, text=text))
    await emitter.emit(ANSWER[4])
    sizes = [len(kinds) for kinds, _ in bus.sent[1:]]
    assert len(sizes) >= 3
    assert all(size <= HELD_BYTES // len(text) + 1 for size in sizes)
    assert [pace for _, pace in bus.sent[1:-1]] == ["window"] * (len(sizes) - 1)
    assert bus.seqs == list(range(1, count + 4))
