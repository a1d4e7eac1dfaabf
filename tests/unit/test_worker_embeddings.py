"""The worker's exec handler with an embeddings request (`needs.embeddings`), over the
in-memory bus twin and an httpx2 mock transport: the upstream call, the reply stream
(Started, Embeddings, Usage, Done), failover and cooldown after a 429, as for chat."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx2
import msgspec
import pytest

from llmbus.proto import (
    EXEC,
    Client,
    Done,
    Embeddings,
    EmbedRequest,
    Error,
    ExecRequest,
    Needs,
    Started,
    Target,
    Usage,
    embed_codec,
)
from tests.unit.test_worker_handlers import ALPHA, BETA, Rig, _error, _rig

EMBED = EmbedRequest(model="shared", input=["one", "two"], dimensions=2)


def _answer(request: httpx2.Request) -> httpx2.Response:
    sent = json.loads(request.content)
    data = [
        {"object": "embedding", "index": i, "embedding": [float(i), 0.5]} for i in range(len(sent["input"]))
    ]
    return httpx2.Response(200, json={"object": "list", "data": data, "usage": {"prompt_tokens": 6}})


async def _send(rig: Rig, target: Target = ALPHA, plan: tuple[Target, ...] = ()) -> None:
    request = ExecRequest(
        request_id="req-embed",
        model="shared",
        reply=rig.inbox,
        deadline=int(time.time() * 1000) + 30_000,
        client=Client(id="client-1"),
        needs=Needs(embeddings=True),
        body=msgspec.Raw(embed_codec.encode(EMBED)),
        target=target,
        plan=list(plan),
    )
    await rig.bus.publish(EXEC, request, reply=rig.inbox, provider=target.provider)
    await rig.bus.settle()


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.worker.bus.drain()
        await rig.worker.http.aclose()
        await rig.bus.drain()


async def test_an_embeddings_request_is_answered_with_its_vectors(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": _answer})
    rigs.append(rig)

    await _send(rig)

    assert rig.answer() == [
        Started(seq=0, provider="alpha", model="up-alpha", credential="key-1", attempt=1),
        Embeddings(seq=1, vectors=[[0.0, 0.5], [1.0, 0.5]]),
        Usage(seq=2, prompt_tokens=6),
        Done(seq=3, finish_reason="stop"),
    ]
    [call] = rig.upstream.calls
    assert str(call.url) == "http://alpha/v1/embeddings"
    assert call.headers["Authorization"] == "Bearer ka"
    assert json.loads(call.content) == {
        "model": "up-alpha",
        "input": ["one", "two"],
        "encoding_format": "float",
        "dimensions": 2,
    }


async def test_a_429_rests_the_credential_and_moves_to_the_next_target(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: _error(429, "slow down", {"retry-after": "7"}), "beta": _answer})
    rigs.append(rig)

    await _send(rig, plan=(BETA,))

    assert rig.upstream.hosts() == ["alpha", "beta"]
    assert [(c.provider, c.status, c.model) for c in rig.cooldowns] == [("alpha", 429, "up-alpha")]
    answer = rig.answer()
    assert isinstance(answer[0], Started)
    assert answer[0].provider == "beta"
    assert isinstance(answer[1], Embeddings)
    assert isinstance(answer[-1], Done)


async def test_an_answer_without_every_vector_is_a_502(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: httpx2.Response(200, json={"data": [{"embedding": [1.0]}]})})
    rigs.append(rig)

    await _send(rig)

    error = rig.answer()[-1]
    assert isinstance(error, Error)
    assert error.status == 502
