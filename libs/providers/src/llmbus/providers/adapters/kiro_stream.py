"""Reading Kiro's answer: event-stream frames in, normalized output out.

- `assistantResponseEvent` is text; `<thinking>…</thinking>` at its very start (what
  Kiro sends when asked to think) is reasoning, split correctly whatever the chunk
  boundaries; `reasoningContentEvent` is reasoning with its signature.
- `toolUseEvent` fragments (`toolUseId`, `name`, `input`, `stop`) become tool-call deltas
  with one index per `toolUseId`; a call that never sent input gets `{}`.
- `contextUsageEvent`, `metadataEvent` and `messageStopEvent` are remembered for the end;
  the answer ends at EOF, stop event or not. Other events are not ours.
- Errors in-band (`:message-type` `error` or `exception`, or a payload whose `_type`
  ends in `Exception`) raise `UpstreamStatus`: throttling 429, validation 400, access
  denied 403, anything else 502.

Usage: `metadataEvent.tokenUsage` when Kiro sends it; otherwise prompt tokens are
`contextUsagePercentage` times the context window (`CONTEXT_WINDOW`, 200 000 tokens for
every Kiro model) and completion tokens an estimate of the output (`estimate_tokens`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from llmbus.proto import Delta, Done, ToolCallDelta, Usage
from llmbus.providers.adapters import kiro_wire as wire
from llmbus.providers.adapters.base import Output
from llmbus.providers.errors import UpstreamError, UpstreamProtocolError, UpstreamStatus
from llmbus.providers.eventstream import Frame

__all__ = ["CONTEXT_WINDOW", "AnswerReader", "estimate_tokens"]

CONTEXT_WINDOW = 200_000
_IN_BAND_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "AccessDeniedException": 403,
}
_error_decoder = msgspec.json.Decoder(wire.ErrorBody)


def estimate_tokens(text: str) -> int:
    """ASCII characters / 4 + every other character: close for English and code, and
    an upper bound for CJK text, with no vocabulary to download."""
    ascii_chars = sum(1 for c in text if c < "\x80")
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


class _ThinkingSplitter:
    """`<thinking>…</thinking>` at the start of the text is reasoning, whatever the
    chunk boundaries; a tag anywhere later is the model's text."""

    OPEN, CLOSE = "<thinking>", "</thinking>"

    def __init__(self) -> None:
        self.state: Literal["start", "thinking", "after", "text"] = "start"
        self.pending = ""

    def feed(self, chunk: str) -> tuple[str, str]:
        """(text, reasoning) that can be sent now."""
        self.pending += chunk
        text, reasoning = "", ""
        if self.state == "start":
            head = self.pending.lstrip()
            if head.startswith(self.OPEN):
                self.state, self.pending = "thinking", head[len(self.OPEN) :]
            elif self.OPEN.startswith(head):
                return "", ""
            else:
                self.state = "text"
        if self.state == "thinking":
            end = self.pending.find(self.CLOSE)
            if end < 0:
                keep = _partial_tag(self.pending, self.CLOSE)
                reasoning, self.pending = (
                    self.pending[: len(self.pending) - keep],
                    self.pending[len(self.pending) - keep :],
                )
                return "", reasoning
            reasoning, self.pending = self.pending[:end], self.pending[end + len(self.CLOSE) :]
            self.state = "after"
        if self.state == "after":
            self.pending = self.pending.lstrip("\n")
            if not self.pending:
                return "", reasoning
            self.state = "text"
        text, self.pending = self.pending, ""
        return text, reasoning

    def flush(self) -> tuple[str, str]:
        pending, self.pending = self.pending, ""
        if self.state == "thinking":
            return "", pending
        return ("" if self.state == "after" else pending), ""


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


@dataclass
class AnswerReader:
    """Normalized output from Kiro's events, one frame at a time."""

    splitter: _ThinkingSplitter = field(default_factory=_ThinkingSplitter)
    calls: dict[str, int] = field(default_factory=dict)
    argued: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    reasoned: list[str] = field(default_factory=list)
    context_percentage: float | None = None
    metadata: wire.TokenUsage | None = None
    stop_reason: str = ""
    seen: bool = False

    def frame(self, frame: Frame) -> list[Output]:
        self.seen = True
        message_type = frame.header(":message-type") or "event"
        if message_type == "error":
            raise _in_band(
                frame.header(":error-code"), frame.header(":error-message") or _payload_text(frame)
            )
        if message_type == "exception":
            raise _in_band(frame.header(":exception-type"), _payload_text(frame))
        if b'_type"' in frame.payload[:200]:
            try:
                error = _error_decoder.decode(frame.payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                error = None
            if error is not None and error.kind.endswith("Exception"):
                raise _in_band(error.kind, error.text)
        event_type = frame.header(":event-type")
        try:
            return self._event(event_type, frame.payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise UpstreamProtocolError(f"the upstream sent a malformed {event_type or 'event'}") from None

    def _event(self, event_type: str, payload: bytes) -> list[Output]:
        if event_type == "assistantResponseEvent":
            content = wire.decode_event(payload, event_type, wire.AssistantResponseEvent).content
            return self._text(*self.splitter.feed(content))
        if event_type == "reasoningContentEvent":
            reasoning = wire.decode_event(payload, event_type, wire.ReasoningContentEvent)
            self.reasoned.append(reasoning.text)
            if reasoning.text or reasoning.signature:
                return [Delta(seq=0, reasoning=reasoning.text, reasoning_signature=reasoning.signature)]
            return []
        if event_type == "toolUseEvent":
            return self._tool(wire.decode_event(payload, event_type, wire.ToolUseEvent))
        if event_type == "contextUsageEvent":
            usage = wire.decode_event(payload, event_type, wire.ContextUsageEvent)
            self.context_percentage = usage.context_usage_percentage
        elif event_type == "metadataEvent":
            self.metadata = (
                wire.decode_event(payload, event_type, wire.MetadataEvent).token_usage or self.metadata
            )
        elif event_type == "messageStopEvent":
            # Usage events may still follow: the answer ends at EOF.
            self.stop_reason = wire.decode_event(payload, event_type, wire.MessageStopEvent).stop_reason
        # meteringEvent (credits), followupPromptEvent, codeReferenceEvent, ...: not ours.
        return []

    def _text(self, text: str, reasoning: str) -> list[Output]:
        if not (text or reasoning):
            return []
        self.written.append(text)
        self.reasoned.append(reasoning)
        return [Delta(seq=0, text=text, reasoning=reasoning)]

    def _tool(self, event: wire.ToolUseEvent) -> list[Output]:
        call_id = event.tool_use_id
        if not call_id:
            raise UpstreamProtocolError("the upstream sent a tool use without an id")
        fragment = (
            event.input
            if isinstance(event.input, str)
            else ""
            if event.input is None
            else json.dumps(event.input)
        )
        out: list[ToolCallDelta] = []
        index = self.calls.get(call_id)
        if index is None:
            index = self.calls[call_id] = len(self.calls)
            self.written.append(event.name)
            out.append(ToolCallDelta(index=index, id=call_id, name=event.name, arguments=fragment))
        elif fragment:
            out.append(ToolCallDelta(index=index, arguments=fragment))
        if fragment:
            self.argued.add(call_id)
            self.written.append(fragment)
        if event.stop and call_id not in self.argued:
            self.argued.add(call_id)
            out.append(ToolCallDelta(index=index, arguments="{}"))
        return [Delta(seq=0, tool_calls=out)] if out else []

    def finish(self) -> list[Output]:
        out = self._text(*self.splitter.flush())
        missing = [
            ToolCallDelta(index=i, arguments="{}") for c, i in self.calls.items() if c not in self.argued
        ]
        if missing:
            out.append(Delta(seq=0, tool_calls=missing))
        out.append(self._usage())
        if self.calls:
            finish = "tool_calls"
        elif "max_tokens" in self.stop_reason.lower() or "length" in self.stop_reason.lower():
            finish = "length"
        else:
            finish = "stop"
        out.append(Done(seq=0, finish_reason=finish))
        return out

    def _usage(self) -> Usage:
        reasoning = estimate_tokens("".join(self.reasoned))
        if self.metadata is not None:
            m = self.metadata
            return Usage(
                seq=0,
                prompt_tokens=m.uncached_input_tokens
                + m.cache_read_input_tokens
                + m.cache_write_input_tokens,
                completion_tokens=m.output_tokens,
                cached_tokens=m.cache_read_input_tokens,
                cache_creation_tokens=m.cache_write_input_tokens,
                reasoning_tokens=min(reasoning, m.output_tokens),
            )
        prompt = round(self.context_percentage * CONTEXT_WINDOW / 100) if self.context_percentage else 0
        return Usage(
            seq=0,
            prompt_tokens=prompt,
            completion_tokens=estimate_tokens("".join(self.written)) + reasoning,
            reasoning_tokens=reasoning,
        )


def _payload_text(frame: Frame) -> str:
    try:
        return _error_decoder.decode(frame.payload).text
    except (msgspec.DecodeError, msgspec.ValidationError):
        return frame.payload[:300].decode("utf-8", errors="replace").strip()


def _in_band(kind: str, message: str) -> UpstreamError:
    short = kind.rsplit("#", 1)[-1].split(":", 1)[0]
    status = _IN_BAND_STATUS.get(short, 502)
    return UpstreamStatus(
        status, message or f"the upstream failed mid-stream ({short or 'error'})", code=short
    )
