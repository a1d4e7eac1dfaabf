"""The worker's reply stream: which frames are written at once (`"now"`), which wait for
the end of the loop's pass (`"pass"`) and which may wait a moment to share a write
(`"window"`), by whether the request streams and whether others are in flight."""

from __future__ import annotations

import pytest

from llmbus.bus import Pace
from llmbus.proto import EVENTS, AnyEvent, Delta, Done, Started, Usage
from llmbus.testing import InMemoryBus
from llmbus.worker.emitter import Emitter


class _PaceRecorder(InMemoryBus):
    """The in-memory bus, remembering the pace of every raw publish."""

    def __init__(self) -> None:
        super().__init__()
        self.paces: list[tuple[str, Pace]] = []

    async def publish_raw(
        self, subject: str, data: bytes, *, reply: str = "", traced: bool = False, pace: Pace = "pass"
    ) -> None:
        self.paces.append((type(EVENTS.decode(data)).__name__, pace))
        await super().publish_raw(subject, data, reply=reply, traced=traced, pace=pace)


ANSWER: list[AnyEvent] = [
    Started(seq=0, provider="p", model="m", credential="c"),
    Delta(seq=0, text="a"),
    Delta(seq=0, text="b"),
    Usage(seq=0, prompt_tokens=1, completion_tokens=2),
    Done(seq=0, finish_reason="stop"),
]


@pytest.mark.parametrize(
    ("streamed", "in_flight", "paces"),
    [
        # Alone, a whole answer's frames share the write its end makes at once.
        (False, 1, ["pass", "pass", "window", "pass", "now"]),
        # With others in flight, the end waits for the pass like the rest.
        (False, 3, ["pass", "pass", "window", "pass", "pass"]),
        # A stream's first frames go at once only when others would hold up the pass.
        (True, 1, ["pass", "pass", "window", "pass", "now"]),
        (True, 3, ["now", "now", "window", "pass", "pass"]),
    ],
)
async def test_the_pace_of_each_frame(streamed: bool, in_flight: int, paces: list[Pace]) -> None:
    bus = _PaceRecorder()
    emitter = Emitter(bus, "_INBOX.edge.1", 1, "_INBOX.guard", streamed=streamed, in_flight=range(in_flight))
    for event in ANSWER:
        await emitter.emit(event)
    assert bus.paces == list(zip(["Started", "Delta", "Delta", "Usage", "Done"], paces, strict=True))
    assert emitter.seq == 1 + len(ANSWER)
