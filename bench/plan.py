"""The legs (who answers) and the phases (what is asked) of a run."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.client import Target

__all__ = ["LEG_NAMES", "PHASES", "Leg", "Phase", "chat_body"]

LEG_NAMES = ("direct", "llmbus", "litellm")

PROMPT = "Benchmark the gateway side by side, please."
"""Long enough for the mock's answer to split into 20 chunks."""


def chat_body(model: str, *, stream: bool) -> bytes:
    tail = ',"stream":true' if stream else ""
    return (f'{{"model":"{model}","messages":[{{"role":"user","content":"{PROMPT}"}}]{tail}}}').encode()


@dataclass(frozen=True)
class Phase:
    key: str
    title: str
    stream: bool
    concurrency: int
    paced: bool = False
    """Against the mock that sends chunks 20 ms apart, for a window of time."""
    weight: int = 1
    """Requests of this phase for each of `--requests`."""


PHASES = (
    Phase("c1", "non-streamed, concurrency 1", stream=False, concurrency=1),
    Phase("c32", "non-streamed, concurrency 32", stream=False, concurrency=32, weight=4),
    Phase("stream", "streamed 20 chunks, concurrency 1", stream=True, concurrency=1),
    Phase("streams64", "64 streams of 20 chunks 20 ms apart", stream=True, concurrency=64, paced=True),
)


@dataclass
class Leg:
    """One way to the mock upstream: directly, through llmbus, through LiteLLM."""

    name: str
    title: str
    url: str
    """Chat completions URL for the fast mock's model."""
    paced_url: str
    key: str
    model: str
    paced_model: str
    processes: list[str] = field(default_factory=list)
    """The processes on this leg's path (their CPU is this leg's)."""

    @property
    def label(self) -> str:
        return "LiteLLM" if self.name == "litellm" else self.name

    def target(self, phase: Phase) -> Target:
        url, model = (self.paced_url, self.paced_model) if phase.paced else (self.url, self.model)
        return Target.chat(url, self.key, chat_body(model, stream=phase.stream), stream=phase.stream)
