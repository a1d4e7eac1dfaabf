"""The normalized embeddings request: what the edge builds from a client's embeddings
call and a worker turns into its provider's embeddings API.

It travels as the body of a route request whose `needs.embeddings` is set, on the same
subjects as a chat request (`llm.v1.route`, `llm.v1.exec.<provider>`), so routing,
credentials, failover and deadlines are the chat path's; the answer is one `Embeddings`
event (then `Usage` and `Done`) on the reply stream."""

from __future__ import annotations

from llmbus.proto.base import Msg

__all__ = ["EmbedRequest"]


class EmbedRequest(Msg, frozen=True, kw_only=True):
    """Texts to embed, in order. `model` is the name the client asked for; `dimensions`
    asks the model to shorten its vectors (OpenAI `dimensions`, Gemini
    `outputDimensionality`), None for the model's own size."""

    model: str
    input: list[str]
    dimensions: int | None = None
    user: str | None = None
