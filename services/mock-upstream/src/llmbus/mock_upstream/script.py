"""What the mock answers, whatever the family: a `Prompt` (what a family module read
from its own request format) in, an `Answer` (text or tool calls, finish reason, token
counts) out. Family modules only parse and render; the script is shared, so every
family answers the same request the same way and the tests can expect one answer.

- tools offered, tool choice not `none`, and the last turn is the user's: call the named
  tool or the first one, with arguments made from its schema (two calls with
  `parallel-tools`);
- the last turn is a tool result: `Tool said: <result>`;
- otherwise: `Mock answer to: <last user text>`, plus ` [images: image/png, ...]` when
  the last user turn carries images (`[images: url]` for images by URL);
- `max_tokens` below the answer's size, or the `length` scenario, truncates it (`length`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from llmbus.mock_upstream.scenarios import Scenario

__all__ = ["Answer", "MockCall", "Prompt", "ToolSpec", "split", "tokens"]

_ids = itertools.count(1)


def tokens(text: str) -> int:
    """The mock's token count: a quarter of the characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def split(text: str, parts: int) -> list[str]:
    """`text` in `parts` nearly equal pieces (fewer for short text)."""
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


@dataclass(frozen=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prompt:
    """A request, as far as the script cares."""

    model: str
    last_user_text: str = ""
    prompt_text: str = ""
    """Every text of the request, for the prompt's token count."""
    images: list[str] = field(default_factory=list)
    """Media types (or URLs) of the images in the last user turn."""
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"
    """`auto`, `none`, `required`, or a tool's name."""
    last_turn: Literal["user", "assistant", "tool"] = "user"
    tool_result: str = ""
    """The text of the last tool result, when the last turn is one."""
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    """OpenAI streams: end with a usage chunk."""


@dataclass
class MockCall:
    id: str
    name: str
    arguments: str
    """JSON text."""

    @property
    def input(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.arguments)
        return value


@dataclass
class Answer:
    text: str
    calls: list[MockCall]
    finish: Literal["stop", "length", "tool_calls"]
    prompt_tokens: int
    completion_tokens: int
    id: str = field(default_factory=lambda: f"{next(_ids):012d}")

    @classmethod
    def to(cls, prompt: Prompt, scenario: Scenario) -> Answer:
        calls = _calls(prompt, parallel=scenario is Scenario.PARALLEL_TOOLS)
        if calls:
            text = ""
        elif prompt.last_turn == "tool":
            text = f"Tool said: {prompt.tool_result}"
        else:
            text = f"Mock answer to: {prompt.last_user_text}"
            if prompt.images:
                text += f" [images: {', '.join(prompt.images)}]"
        finish: Literal["stop", "length", "tool_calls"] = "tool_calls" if calls else "stop"
        limit = 3 if scenario is Scenario.LENGTH else prompt.max_tokens
        if not calls and limit is not None and tokens(text) > limit:
            text, finish = text[: limit * 4], "length"
        completion = "".join(c.name + c.arguments for c in calls) if calls else text
        return cls(
            text=text,
            calls=calls,
            finish=finish,
            prompt_tokens=tokens(prompt.prompt_text),
            completion_tokens=tokens(completion),
        )


def _example(schema: object) -> object:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(str(kind), "mock")


def _arguments(tool: ToolSpec) -> str:
    properties = tool.parameters.get("properties") or {}
    return json.dumps({name: _example(schema) for name, schema in properties.items()}, separators=(",", ":"))


def _calls(prompt: Prompt, *, parallel: bool) -> list[MockCall]:
    if not prompt.tools or prompt.tool_choice == "none" or prompt.last_turn != "user":
        return []
    named = next((t for t in prompt.tools if t.name == prompt.tool_choice), None)
    chosen = [named] if named else prompt.tools[:1]
    if parallel and not named:
        chosen = prompt.tools[:2] if len(prompt.tools) > 1 else prompt.tools[:1] * 2
    base = next(_ids)
    return [
        MockCall(id=f"call_mock{base:06d}{i}", name=tool.name, arguments=_arguments(tool))
        for i, tool in enumerate(chosen)
    ]
