"""`POST /v1/completions` (OpenAI's legacy completions), streamed or whole (served by
`llmbus.edge.hot`): the prompt goes through the normalized request like any chat.

A list of prompts (at most `MAX_PROMPTS`) fans out: one call per prompt, all at once,
each answering the choice whose `index` is its prompt's. Whole, the answer holds every
choice and the usage of all; streamed, the chunks of every choice interleave as they
come, then one usage chunk (when asked for) and `[DONE]`. A call that fails before its
first byte fails the request (the others are cancelled); one that fails later ends the
stream with an error event."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Final

from starlette.types import Receive, Send

from llmbus.api import ApiError, openai_error_body
from llmbus.api.completions import (
    TextChunkWriter,
    TextCompletionBuilder,
    decode_completion_prompts,
    text_completion,
)
from llmbus.edge.calls import Call, raise_for, report_usage
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import Caller
from llmbus.edge.limits import check_request
from llmbus.edge.quota import settle
from llmbus.edge.relay import (
    DURATION,
    REQUESTS,
    SSE_HEADERS,
    FanOut,
    cancelled_if_the_client_leaves,
    open_call,
    respond_whole,
)
from llmbus.edge.routes.chat import OpenAIAnswer, OpenAIChunkStream
from llmbus.proto import AnyEvent, ChatRequest, Delta, Done, Error, Started, Usage

__all__ = ["MAX_PROMPTS", "PATH", "Completions"]

PATH = "/v1/completions"
MAX_PROMPTS: Final = 16
"""The most prompts one request may carry; each is one upstream call."""


class Completions:
    """The legacy-completions dialect of the relay."""

    id_prefix = "cmpl-"
    api = "completions"

    @staticmethod
    def error_body(error: ApiError) -> bytes:
        return openai_error_body(error)

    @staticmethod
    def decode(body: bytes) -> ChatRequest:
        chats = decode_completion_prompts(body, MAX_PROMPTS)
        if len(chats) > 1:
            raise _Prompts(chats)
        return chats[0]

    @staticmethod
    def encoder(answer_id: str, chat: ChatRequest) -> _TextStream:
        return _TextStream(TextChunkWriter(answer_id, chat.model, chat.include_usage))

    @staticmethod
    def builder(answer_id: str, chat: ChatRequest) -> OpenAIAnswer[TextCompletionBuilder]:
        return OpenAIAnswer(TextCompletionBuilder(answer_id, chat.model))


class _TextStream(OpenAIChunkStream[TextChunkWriter]):
    """`text_completion` chunks: the text as it comes (no role chunk)."""

    __slots__ = ()

    def delta(self, event: Delta) -> bytes:
        out = self._writer.text(event.text) if event.text else b""
        return out + self._finish_once(event)


# --- several prompts -------------------------------------------------------------------


class _Prompts(FanOut):
    """A completions request with several prompts: one call each."""

    def __init__(self, chats: list[ChatRequest]) -> None:
        super().__init__(f"{len(chats)} prompts")
        self.chats = chats

    async def serve(
        self,
        context: EdgeContext,
        caller: Caller,
        headers: Mapping[str, str],
        started: float,
        receive: Receive,
        send: Send,
        responded: Callable[[], None],
    ) -> None:
        for chat in self.chats:
            check_request(chat, context.settings)
        first = self.chats[0]
        answer_id = "cmpl-" + uuid.uuid4().hex
        async with cancelled_if_the_client_leaves(receive):
            calls = await _open_all(context, self.chats, caller, headers)
            if not first.stream:
                body = await _whole(calls, answer_id, first.model, started)
        responded()
        if not first.stream:
            headers_out = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 200, "headers": headers_out})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        async with cancelled_if_the_client_leaves(receive):
            await _stream(calls, answer_id, first, started, send)


async def _open_all(
    context: EdgeContext, chats: list[ChatRequest], caller: Caller, headers: Mapping[str, str]
) -> list[tuple[Call, AnyEvent]]:
    """Every call started and its first event read; the first failure fails them all."""
    tasks = [
        asyncio.create_task(open_call(context, chat, caller, headers, api=Completions.api)) for chat in chats
    ]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, tuple):
                call, first = result
                await _end(call, first, None, "499")
        raise


async def _end(call: Call, first: AnyEvent, usage: Usage | None, status: str, error: str = "") -> None:
    """The accounting of one call that ends here (as the relay does for one)."""
    REQUESTS.labels(call.chat.model, status).inc()
    await call.close()
    if (status == "200" and not call.finished) or status == "499":
        status, error = "499", "client_closed_request"
    report_usage(call, first, usage, int(status), error)
    await settle(call.bus, call.reservation, usage, answered=isinstance(first, Started))


class _Choice:
    """One prompt's answer collected whole (the relay's AnswerBuilder)."""

    def __init__(self) -> None:
        self.builder = TextCompletionBuilder("", "")
        self.usage: Usage | None = None

    def add(self, event: Delta) -> None:
        self.builder.add(event)

    def build(self, done: Done, usage: Usage | None) -> bytes:
        self.builder.finish_reason = done.finish_reason
        self.usage = usage
        return b""


def _sum(usages: list[Usage | None]) -> Usage:
    return Usage(
        seq=0,
        prompt_tokens=sum(u.prompt_tokens for u in usages if u),
        completion_tokens=sum(u.completion_tokens for u in usages if u),
    )


async def _whole(calls: list[tuple[Call, AnyEvent]], answer_id: str, model: str, started: float) -> bytes:
    choices = [_Choice() for _ in calls]
    outcomes = await asyncio.gather(
        *(
            respond_whole(call, first, choice, started)
            for (call, first), choice in zip(calls, choices, strict=True)
        ),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return text_completion(
        answer_id,
        model,
        [choice.builder.choice(index) for index, choice in enumerate(choices)],
        _sum([choice.usage for choice in choices]),
    )


async def _stream(
    calls: list[tuple[Call, AnyEvent]], answer_id: str, chat: ChatRequest, started: float, send: Send
) -> None:
    created = int(time.time())
    out: asyncio.Queue[bytes] = asyncio.Queue()
    failed = asyncio.Event()

    async def pump(index: int, call: Call, first: AnyEvent) -> Usage | None:
        writer = TextChunkWriter(answer_id, chat.model, False, created, index)
        usage: Usage | None = None
        status, error = "499", ""
        finished = False
        event = first
        try:
            while True:
                match event:
                    case Delta():
                        if not call.first_token_at:
                            call.first_token_at = time.perf_counter()
                        if event.text:
                            out.put_nowait(writer.text(event.text))
                        if event.finish_reason and not finished:
                            finished = True
                            out.put_nowait(writer.finish(event.finish_reason))
                    case Usage():
                        usage = event
                    case Done():
                        call.finished = True
                        status = "200"
                        if not finished:
                            out.put_nowait(writer.finish(event.finish_reason))
                        return usage
                    case Error():
                        raise raise_for(event)
                event = await call.next()
        except ApiError as exc:
            status, error = str(exc.status), exc.code
            out.put_nowait(writer.error(openai_error_body(exc)))
            failed.set()
            return usage
        finally:
            DURATION.labels(call.chat.model).observe(time.perf_counter() - started)
            await _end(call, first, usage, status, error)

    pumps = [asyncio.create_task(pump(i, call, first)) for i, (call, first) in enumerate(calls)]
    try:
        while True:
            pending = [p for p in pumps if not p.done()]
            if not pending and out.empty():
                break
            if failed.is_set() and out.empty():
                break
            if out.empty():
                getter = asyncio.create_task(out.get())
                await asyncio.wait([getter, *pending], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                chunk = getter.result()
            else:
                chunk = out.get_nowait()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tail = b""
        if not failed.is_set():
            writer = TextChunkWriter(answer_id, chat.model, chat.include_usage, created)
            if chat.include_usage:
                tail += writer.usage(_sum([p.result() for p in pumps]))
            tail += writer.done()
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
