"""The Kiro family: CodeWhisperer's `generateAssistantResponse` and Kiro's token services.

- `POST /generateAssistantResponse`: `Authorization: Bearer <access token>`; the body's
  `conversationState` is validated as strictly as the real service does it (history
  alternating user/assistant from a user turn to an assistant turn, no empty content,
  tools on the current message only, every tool used in history defined, every tool use
  answered by the next user turn and every result answering one, no duplicate result,
  tool names of at most 64 characters, input schemas with `type`, `properties` and
  `required`), else 400 `Improperly formed request.` as a ValidationException. The answer
  is always an AWS event-stream (`application/vnd.amazon.eventstream`):
  `assistantResponseEvent`s, or `toolUseEvent` fragments closed by `stop: true`, then a
  `meteringEvent` and a `contextUsageEvent`; a truncated answer adds a
  `messageStopEvent` with `stopReason: max_tokens`; the mid-stream error is an in-band
  exception frame. Tokens containing `expired`, or issued here and past their lifetime
  (`kiro_token_seconds`), are refused with 403 `The bearer token included in the request
  is invalid.`, as the service refuses an expired token.
- `GET /ListAvailableModels`: the model catalogue (the adapter's health probe).
- `POST /refreshToken` (Kiro's social login service): `{refreshToken}` in, a new
  `accessToken`, `refreshToken`, `profileArn` and `expiresIn` out.
- `POST /token` (AWS SSO OIDC): `grantType: refresh_token` with `clientId`,
  `clientSecret` and `refreshToken`; the device-code grant, client registration and
  device authorisation are `aws_oidc.py`'s; other grants are `unsupported_grant_type`.
- `POST /ListAvailableProfiles`: the account's one profile (`profiles[{arn,
  profileName}]`), as an Identity Center login looks its profile ARN up.
Refresh tokens containing `invalid` or `expired` are refused as the services do.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import zlib
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmbus.mock_upstream.aws_oidc import DEVICE_GRANT_TYPE, OidcDevices
from llmbus.mock_upstream.openai import bearer
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.script import Answer, Prompt, ToolSpec, split
from llmbus.mock_upstream.serve import MockState, Reply, json_response, serve

__all__ = ["MODELS", "KiroDialect", "encode_frame", "frame", "parse_conversation", "routes"]

MODELS = ("claude-sonnet-4.5", "claude-sonnet-4", "claude-haiku-4.5", "claude-opus-4.5", "auto")
CONTEXT_WINDOW = 200_000
PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCKPROFILE"
_SERVICE = "com.amazon.aws.codewhisperer"
_IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
_ids = itertools.count(1)


def _exception(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"__type": f"{_SERVICE}#{kind}", "message": message, **extra}


def _malformed() -> Reply:
    return Reply(400, _exception("ValidationException", "Improperly formed request."))


def _bad_token() -> Reply:
    return Reply(403, {"message": "The bearer token included in the request is invalid.", "reason": None})


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """An AWS event-stream frame: `[total length u32][headers length u32][prelude CRC]
    [headers][payload][message CRC]`, big-endian, CRC-32 as zlib computes it; every
    header a string (type 7). The mock frames on its own, not with the gateway's code,
    so that the two check each other."""
    block = b"".join(
        bytes([len(name)]) + name + b"\x07" + len(value).to_bytes(2, "big") + value
        for name, value in ((k.encode(), v.encode()) for k, v in headers.items())
    )
    prelude = (16 + len(block) + len(payload)).to_bytes(4, "big") + len(block).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + block + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event frame as Kiro sends it."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload, separators=(",", ":")).encode())


class _Tokens:
    """Access tokens this mock issued, with their expiry (Unix seconds)."""

    def __init__(self, lifetime: int, mint: Callable[[str, str], str]) -> None:
        self.lifetime = lifetime
        self.expiry: dict[str, float] = {}
        self._mint = mint

    def issue(self) -> dict[str, Any]:
        access = self._mint("Kiro access token", f"aoa-mock-{next(_ids)}-{secrets.token_hex(8)}")
        self.expiry[access] = time.time() + self.lifetime
        return {
            "accessToken": access,
            "refreshToken": self._mint("Kiro refresh token", f"aor-mock-{secrets.token_hex(8)}"),
            "expiresIn": self.lifetime,
        }

    def refused(self, token: str) -> bool:
        expiry = self.expiry.get(token)
        return "expired" in token or (expiry is not None and expiry <= time.time())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _check_user(message: object, *, current: bool) -> dict[str, Any]:
    if not isinstance(message, dict) or not _text(message.get("content")).strip():
        raise _malformed()
    if not isinstance(message.get("modelId"), str) or not isinstance(message.get("origin"), str):
        raise _malformed()
    context = message.get("userInputMessageContext") or {}
    if not isinstance(context, dict) or (context.get("tools") and not current):
        raise _malformed()
    for image in message.get("images") or []:
        if not isinstance(image, dict) or image.get("format") not in _IMAGE_FORMATS:
            raise _malformed()
        source = image.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("bytes"), str):
            raise _malformed()
    return context


def _check_tools(tools: object) -> list[ToolSpec]:
    out: list[ToolSpec] = []
    for entry in tools if isinstance(tools, list) else []:
        spec = entry.get("toolSpecification") if isinstance(entry, dict) else None
        if not isinstance(spec, dict):
            raise _malformed()
        name, schema = spec.get("name"), (spec.get("inputSchema") or {}).get("json")
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not _text(spec.get("description")):
            raise _malformed()
        if not isinstance(schema, dict) or not {"type", "properties", "required"} <= schema.keys():
            raise _malformed()
        out.append(ToolSpec(name=name, parameters=schema))
    return out


def _results(context: dict[str, Any]) -> list[str]:
    ids = [r.get("toolUseId") for r in context.get("toolResults") or [] if isinstance(r, dict)]
    if len(ids) != len(set(ids)) or not all(isinstance(i, str) for i in ids):
        raise _malformed()
    return [str(i) for i in ids]


def parse_conversation(body: Any) -> Prompt:
    """A `generateAssistantResponse` body as a `Prompt`; `Reply` 400 when it breaks the
    service's rules."""
    state = body.get("conversationState") if isinstance(body, dict) else None
    if not isinstance(state, dict) or not _text(state.get("conversationId")):
        raise _malformed()
    holder = state.get("currentMessage")
    current = holder.get("userInputMessage") if isinstance(holder, dict) else None
    if not isinstance(current, dict):
        raise _malformed()
    context = _check_user(current, current=True)
    history = state.get("history") or []
    if not isinstance(history, list) or len(history) % 2:
        raise _malformed()
    texts: list[str] = []
    used: set[str] = set()
    pending: set[str] = set()
    for index, entry in enumerate(history):
        role = "userInputMessage" if index % 2 == 0 else "assistantResponseMessage"
        if not isinstance(entry, dict) or list(entry) != [role]:
            raise _malformed()
        message = entry[role]
        if role == "userInputMessage":
            answered = set(_results(_check_user(message, current=False)))
            if answered != pending:
                raise _malformed()
            pending = set()
        else:
            if not isinstance(message, dict) or not _text(message.get("content")).strip():
                raise _malformed()
            for use in message.get("toolUses") or []:
                if not isinstance(use, dict) or not isinstance(use.get("input"), dict):
                    raise _malformed()
                pending.add(str(use.get("toolUseId")))
                used.add(str(use.get("name")))
        texts.append(_text(message.get("content")))
    tools = _check_tools(context.get("tools"))
    results = _results(context)
    if set(results) != pending or not used <= {t.name for t in tools}:
        raise _malformed()
    content = _text(current.get("content"))
    result_text = " ".join(
        _text(part.get("text"))
        for result in context.get("toolResults") or []
        if isinstance(result, dict)
        for part in result.get("content") or []
        if isinstance(part, dict)
    )
    return Prompt(
        model=_text(current.get("modelId")),
        last_user_text=content,
        prompt_text=" ".join([*texts, content]),
        images=[f"image/{image['format']}" for image in current.get("images") or []],
        tools=tools,
        last_turn="tool" if results else "user",
        tool_result=result_text,
        stream=True,  # Kiro always streams
    )


class KiroDialect:
    family = "kiro"
    stream_media_type = "application/vnd.amazon.eventstream"

    def __init__(self, tokens: _Tokens) -> None:
        self.tokens = tokens

    def key(self, request: Request) -> str:
        return bearer(request)

    def missing_key(self) -> Reply:
        return Reply(403, _exception("AccessDeniedException", "Missing bearer token."))

    def bad_json(self) -> Reply:
        return _malformed()

    def parse(self, body: Any, request: Request) -> Prompt:
        if self.tokens.refused(bearer(request)):
            raise _bad_token()
        return parse_conversation(body)

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        if scenario is Scenario.ERROR_400:
            return _malformed()
        if scenario is Scenario.ERROR_401:
            return _bad_token()  # Kiro refuses a bad token with 403
        if scenario is Scenario.ERROR_429:
            return Reply(
                429, _exception("ThrottlingException", "Too many requests, please wait before trying again.")
            )
        if scenario is Scenario.ERROR_500:
            return Reply(
                500,
                _exception(
                    "InternalServerException",
                    "Encountered an unexpected error when processing the request, please try again.",
                ),
            )
        return Reply(503, _exception("ServiceUnavailableException", "Service is temporarily unavailable."))

    def whole(self, answer: Answer, prompt: Prompt) -> object:
        return b"".join(self.frames(answer, prompt, 1))

    def frames(self, answer: Answer, prompt: Prompt, parts: int) -> list[bytes]:
        frames: list[bytes] = []
        if answer.text:
            frames += [
                frame("assistantResponseEvent", {"content": piece}) for piece in split(answer.text, parts)
            ]
        for call in answer.calls:
            tool_id = f"tooluse_{call.id.removeprefix('call_')}"
            head = {"name": call.name, "toolUseId": tool_id}
            frames.append(frame("toolUseEvent", head))
            pieces = split(call.arguments, max(1, parts // len(answer.calls)))
            frames += [frame("toolUseEvent", {**head, "input": piece}) for piece in pieces]
            frames.append(frame("toolUseEvent", {**head, "stop": True}))
        if answer.finish == "length":
            frames.append(frame("messageStopEvent", {"stopReason": "max_tokens"}))
        frames.append(frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01}))
        percentage = round(answer.prompt_tokens * 100 / CONTEXT_WINDOW, 4)
        frames.append(frame("contextUsageEvent", {"contextUsagePercentage": percentage}))
        return frames

    def midstream_error(self) -> bytes:
        headers = {
            ":exception-type": "InternalServerException",
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        message = {
            "message": "Encountered an unexpected error when processing the request, please try again."
        }
        return encode_frame(headers, json.dumps(message).encode())

    def malformed(self) -> bytes:
        """A prelude whose CRC does not match."""
        prelude = (64).to_bytes(4, "big") + (0).to_bytes(4, "big")
        return prelude + (zlib.crc32(prelude) ^ 1).to_bytes(4, "big") + b"\x00" * 52


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refresh_refused(token: object) -> bool:
    return not isinstance(token, str) or not token or "invalid" in token or "expired" in token


def routes(state: MockState) -> list[Route]:
    tokens = _Tokens(state.settings.kiro_token_seconds, state.mint)
    dialect = KiroDialect(tokens)
    devices = OidcDevices(state, tokens.issue)

    async def generate(request: Request) -> Response:
        return await serve(state, dialect, request)

    async def list_models(request: Request) -> Response:
        if not bearer(request):
            return json_response(dialect.missing_key().body, 403)
        if tokens.refused(bearer(request)):
            return json_response(_bad_token().body, 403)
        models = [
            {"modelId": m, "modelName": m, "supportedInputTypes": ["TEXT", "IMAGE"]}
            for m in MODELS
            if m != "auto"
        ]
        return json_response({"defaultModel": {"modelId": "auto"}, "models": models})

    async def list_profiles(request: Request) -> Response:
        if not bearer(request) or tokens.refused(bearer(request)):
            return json_response(_bad_token().body, 403)
        return json_response({"profiles": [{"arn": PROFILE_ARN, "profileName": "MockProfile"}]})

    async def refresh_social(request: Request) -> Response:
        body = await _json(request)
        if _refresh_refused(body.get("refreshToken")):
            return json_response({"message": "Invalid refresh token provided"}, 400)
        return json_response({**tokens.issue(), "profileArn": PROFILE_ARN})

    async def oidc_token(request: Request) -> Response:
        body = await _json(request)
        if body.get("grantType") == DEVICE_GRANT_TYPE:
            return devices.token(body)
        if body.get("grantType") != "refresh_token":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}, 400
            )
        if not _text(body.get("clientId")) or not _text(body.get("clientSecret")):
            return json_response({"error": "invalid_client", "error_description": "Invalid client"}, 401)
        if _refresh_refused(body.get("refreshToken")):
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid refresh token provided"}, 400
            )
        return json_response({**tokens.issue(), "tokenType": "Bearer"})

    return [
        Route("/generateAssistantResponse", generate, methods=["POST"]),
        Route("/ListAvailableModels", list_models, methods=["GET"]),
        Route("/refreshToken", refresh_social, methods=["POST"]),
        Route("/token", oidc_token, methods=["POST"]),
        Route("/ListAvailableProfiles", list_profiles, methods=["POST"]),
        *devices.routes(_json),
    ]
