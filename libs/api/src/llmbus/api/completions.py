"""OpenAI's legacy completions (`POST /v1/completions`) as a client dialect.

The prompt becomes one user message of the normalized request, so every family serves
it through its chat API; the answer's text comes back as a `text_completion` (whole) or
`text_completion` chunks ending with `data: [DONE]` (streamed). What only a raw
completion model could do is refused with a 400 naming the field: `suffix` (insertion),
`echo`, `logprobs`, `best_of` and `n` above 1, `logit_bias`, token-id prompts. A list
of prompts is answered one choice per prompt (the edge fans it out, within a bound)."""

from __future__ import annotations

import time

import msgspec

from llmbus.api.bodies import decode_body
from llmbus.api.completions_wire import CompletionRequest
from llmbus.api.errors import InvalidRequest
from llmbus.proto import ChatRequest, Delta, Message, Usage

__all__ = [
    "TextChunkWriter",
    "TextCompletionBuilder",
    "decode_completion_prompts",
    "decode_completion_request",
    "text_completion",
]

_decoder = msgspec.json.Decoder(CompletionRequest)
_encode = msgspec.json.Encoder().encode


def _unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def decode_completion_request(body: bytes) -> ChatRequest:
    """Validate a completions body and return the normalized request (the prompt as one
    user message). Raises InvalidRequest naming the offending field (`param`)."""
    return decode_completion_prompts(body, 1)[0]


def decode_completion_prompts(body: bytes, max_prompts: int) -> list[ChatRequest]:
    """Validate a completions body whose `prompt` may be a list of up to `max_prompts`
    strings: one normalized request per prompt, in order (choice `index` i answers
    prompt i). Raises InvalidRequest naming the offending field (`param`)."""
    wire = decode_body(_decoder, body)
    if not wire.model:
        raise InvalidRequest("`model` must not be empty", param="model", code="invalid_value")
    prompts = _prompts(wire.prompt, max_prompts)
    if wire.suffix:
        raise _unsupported(
            "suffix", "`suffix` (insertion) is not supported: the gateway serves completions with chat models"
        )
    if wire.echo:
        raise _unsupported("echo", "`echo` is not supported: only `false` (the default) is")
    if wire.logprobs is not None:
        raise _unsupported("logprobs", "`logprobs` is not supported: only `null` (the default) is")
    if wire.n not in (None, 1):
        raise _unsupported("n", "`n` must be 1: the gateway answers one choice per prompt")
    if wire.best_of not in (None, 1):
        raise _unsupported("best_of", "`best_of` must be 1: the gateway answers one choice per prompt")
    if wire.logit_bias:
        raise _unsupported("logit_bias", "`logit_bias` is not supported (token ids differ between providers)")
    stop = [wire.stop] if isinstance(wire.stop, str) else list(wire.stop or [])
    return [
        ChatRequest(
            model=wire.model,
            messages=[Message(role="user", content=prompt)],
            stream=bool(wire.stream),
            include_usage=bool(wire.stream and wire.stream_options and wire.stream_options.include_usage),
            max_tokens=wire.max_tokens or None,
            temperature=wire.temperature,
            top_p=wire.top_p,
            stop=stop,
            seed=wire.seed,
            presence_penalty=wire.presence_penalty,
            frequency_penalty=wire.frequency_penalty,
            user=wire.user,
        )
        for prompt in prompts
    ]


def _prompts(prompt: str | list[object] | None, max_prompts: int) -> list[str]:
    """The text prompts: a string, or a list of up to `max_prompts` strings."""
    if prompt is None:
        raise InvalidRequest("`prompt` is required", param="prompt", code="missing_field")
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not texts:
        raise InvalidRequest("`prompt` must not be an empty list", param="prompt", code="invalid_value")
    if not all(isinstance(item, str) for item in texts):
        raise _unsupported(
            "prompt", "`prompt` must be a string or a list of strings: token ids are not supported"
        )
    if len(texts) > max_prompts:
        raise _unsupported(
            "prompt",
            f"`prompt` holds {len(texts)} prompts: at most {max_prompts} are answered in one request "
            "(send the others in further requests)",
        )
    for text in texts:
        if not text:
            raise InvalidRequest("`prompt` must not be empty", param="prompt", code="invalid_value")
    return [str(text) for text in texts]


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


class TextChunkWriter:
    """Reply-stream events as OpenAI `text_completion` SSE chunks."""

    __slots__ = ("_created", "_head", "_id", "_model", "include_usage")

    def __init__(
        self,
        completion_id: str,
        model: str,
        include_usage: bool,
        created: int | None = None,
        index: int = 0,
    ) -> None:
        self._id = completion_id
        self._model = model
        self._created = created or int(time.time())
        self.include_usage = include_usage
        head = {"id": completion_id, "object": "text_completion", "created": self._created, "model": model}
        self._head = b"data: " + _encode(head)[:-1] + b',"choices":[{"index":%d,"text":' % index

    def text(self, text: str) -> bytes:
        return self._head + _encode(text) + b',"logprobs":null,"finish_reason":null}]}\n\n'

    def finish(self, finish_reason: str) -> bytes:
        return self._head + b'"","logprobs":null,"finish_reason":' + _encode(finish_reason) + b"}]}\n\n"

    def usage(self, usage: Usage) -> bytes:
        body = {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": _usage(usage),
        }
        return b"data: " + _encode(body) + b"\n\n"

    @staticmethod
    def error(body: bytes) -> bytes:
        return b"data: " + body + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


class TextCompletionBuilder:
    """Collects reply-stream events into one `text_completion`."""

    __slots__ = ("_id", "_model", "_text", "finish_reason", "usage")

    def __init__(self, completion_id: str, model: str) -> None:
        self._id = completion_id
        self._model = model
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason = "stop"

    def add(self, event: Delta) -> None:
        if event.text:
            self._text.append(event.text)

    def choice(self, index: int = 0) -> dict[str, object]:
        return {
            "text": "".join(self._text),
            "index": index,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }

    def build(self) -> bytes:
        return text_completion(self._id, self._model, [self.choice()], self.usage)


def text_completion(
    completion_id: str, model: str, choices: list[dict[str, object]], usage: Usage | None
) -> bytes:
    """One `text_completion` answer (its choices in order, the usage of them all)."""
    return _encode(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _usage(usage or Usage(seq=0)),
        }
    )
