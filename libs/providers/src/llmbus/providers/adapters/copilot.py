"""The GitHub Copilot family: OpenAI's chat format, with Copilot's own auth and headers.

The request body, the stream parsing (including Copilot's `delta.reasoning_text`) and
the error mapping are OpenAI's (`OpenAICompatible`). What differs:

- the credential is a short-lived Copilot token minted from a GitHub token
  (`CopilotTokens`), and it names the API host of the account's plan, which is where
  the request goes (`{endpoints.api}/chat/completions`);
- the service wants to talk to an editor: it answers 400 without `Editor-Version` ("for
  IDE auth") or `Copilot-Integration-Id`; VS Code also sends `Editor-Plugin-Version`,
  `User-Agent`, `Openai-Intent`, a fresh `X-Request-Id` and `X-GitHub-Api-Version`;
- `X-Initiator` says who started the turn: `user` when the last message is the user's
  (that counts as a premium request), `agent` when it is a tool result or an assistant
  turn the client continues (it does not);
- `Copilot-Vision-Request: true` when the request carries images, as VS Code marks them.
"""

from __future__ import annotations

import uuid

import msgspec

from llmbus.proto import ChatRequest
from llmbus.providers.adapters.base import Credential, CredentialSource, Family, UpstreamRequest
from llmbus.providers.adapters.openai import OpenAICompatible
from llmbus.providers.credentials.copilot import (
    INTEGRATION_ID,
    CopilotTokens,
    editor_headers,
    merge_headers,
)
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import ConfiguredProvider

__all__ = ["INTENT", "Copilot"]

INTENT = "conversation-panel"
"""`Openai-Intent` of a chat-panel conversation, as VS Code sends it."""

_encode = msgspec.json.Encoder().encode


class Copilot(OpenAICompatible):
    family: Family = "copilot"

    def credentials(self, http: HttpClient) -> CredentialSource:
        return CopilotTokens(http)

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        per_call = {"Content-Type": "application/json", "X-Initiator": _initiator(chat)}
        if chat.has_images():
            per_call["Copilot-Vision-Request"] = "true"
        headers = self.copilot_headers(provider, credential, accept_stream=chat.stream, per_call=per_call)
        return UpstreamRequest(
            url=f"{_api(provider, credential)}/chat/completions",
            headers=headers,
            body=_encode(self.wire_request(chat, upstream_model)),
        )

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """`GET {api}/models`: free, and it proves the Copilot token and the headers work."""
        return UpstreamRequest(
            url=f"{_api(provider, credential)}/models",
            headers=self.copilot_headers(provider, credential, accept_stream=False),
            method="GET",
        )

    @staticmethod
    def copilot_headers(
        provider: ConfiguredProvider,
        credential: Credential,
        *,
        accept_stream: bool,
        per_call: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Headers of every call to Copilot's API. The provider's `headers` replace the
        editor identity (to follow a newer VS Code) or add to it; the token, the request
        id, `Accept` and the `per_call` headers describe this call and win over them."""
        identity = {
            **editor_headers(),
            "Copilot-Integration-Id": INTEGRATION_ID,
            "Openai-Intent": INTENT,
        }
        call = {
            "Authorization": f"Bearer {credential.token}",
            "Accept": "text/event-stream" if accept_stream else "application/json",
            "X-Request-Id": str(uuid.uuid4()),
            **(per_call or {}),
        }
        return merge_headers(merge_headers(identity, provider.headers), call)


def _api(provider: ConfiguredProvider, credential: Credential) -> str:
    """The API host the token names (business and enterprise plans have their own),
    else the provider's endpoint."""
    return (credential.endpoint or provider.endpoint).rstrip("/")


def _initiator(chat: ChatRequest) -> str:
    last = chat.messages[-1].role if chat.messages else "user"
    return "user" if last == "user" else "agent"
