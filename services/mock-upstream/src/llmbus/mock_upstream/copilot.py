"""The GitHub Copilot family: GitHub's token trade and Copilot's chat API.

- `GET /copilot_internal/v2/token` (GitHub's API): `Authorization: token gho_...` (or a
  `ghu_` token) in, a short-lived Copilot token out, with `expires_at`, `refresh_in` and
  `endpoints.api` = `<this mock>/copilot`, so that a client that follows the answer (as
  it must) talks to this mock's chat API. A GitHub token containing `error-401` gets
  GitHub's `Bad credentials`; one containing `error-403` gets the refusal of an account
  without Copilot. Tokens live `copilot_token_seconds`.
- `POST /copilot/chat/completions`: OpenAI's format, answered by the shared script. The
  Bearer token must be one this mock issued and not expired (else 401 with Copilot's
  plain-text body), and `Editor-Version` and `Copilot-Integration-Id` are required (400
  without, as the real service answers).
- `GET /copilot/models`: Copilot's model list, with capabilities and policy.
- `GET /copilot_internal/user`: the account's plan and quota snapshots.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmbus.mock_upstream.openai import OpenAIDialect
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.script import Prompt
from llmbus.mock_upstream.serve import MockState, Reply, json_response, serve

__all__ = ["MODELS", "CopilotDialect", "TokenBook", "routes"]

MODELS: tuple[tuple[str, str, str, int, bool], ...] = (
    # id, display name, vendor, context window, vision
    ("gpt-4.1", "GPT-4.1", "Azure OpenAI", 128_000, True),
    ("gpt-4o", "GPT-4o", "Azure OpenAI", 128_000, True),
    ("claude-sonnet-4", "Claude Sonnet 4", "Anthropic", 216_000, True),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", "Google", 128_000, True),
)

_TEXT = {"content-type": "text/plain; charset=utf-8"}
_GITHUB_DOCS = "https://docs.github.com/rest"


class TokenBook:
    """The Copilot tokens this mock issued, with their expiry (Unix seconds)."""

    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self.expiry: dict[str, int] = {}

    def issue(self, github_token: str, proxy_host: str) -> tuple[str, int]:
        now = int(time.time())
        expires_at = now + self.lifetime
        tid = uuid.uuid4().hex
        # The real token's shape: `;`-separated claims, then `:` and a MAC over them.
        claims = (
            f"tid={tid};exp={expires_at};sku=yearly_subscriber;proxy-ep={proxy_host};"
            "st=dotcom;chat=1;cit=1;malfil=1;agent_mode=1;mcp=1;8kp=1"
        )
        mac = hashlib.sha256(f"{claims}\n{github_token}".encode()).hexdigest()
        token = f"{claims}:{mac}"
        self.expiry[token] = expires_at
        return token, expires_at

    def refusal(self, token: str) -> Reply | None:
        """Copilot's 401 for a token it did not issue or that has expired, else None."""
        expires_at = self.expiry.get(token)
        if expires_at is None:
            return Reply(401, b"unauthorized: unauthorized: AuthenticateToken authentication failed\n", _TEXT)
        if time.time() >= expires_at:
            return Reply(401, b"unauthorized: token expired\n", _TEXT)
        return None


class CopilotDialect(OpenAIDialect):
    """OpenAI's format with Copilot's auth and its own error bodies."""

    family = "copilot"

    def missing_key(self) -> Reply:
        return Reply(401, b"unauthorized: unauthorized: AuthenticateToken authentication failed\n", _TEXT)

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        if scenario is Scenario.ERROR_400:
            return Reply(
                400,
                {
                    "error": {
                        "message": "The requested model is not supported.",
                        "code": "model_not_supported",
                        "param": "model",
                        "type": "invalid_request_error",
                    }
                },
            )
        if scenario is Scenario.ERROR_401:
            return Reply(401, b"unauthorized: token expired\n", _TEXT)
        if scenario is Scenario.ERROR_429:
            return Reply(
                429,
                {
                    "error": {
                        "message": (
                            "Sorry, you have been rate-limited. Please wait a moment before trying again."
                        ),
                        "code": "user_model_rate_limited",
                    }
                },
                {"retry-after": str(retry_after)},
            )
        return super().error(scenario, prompt, key, retry_after)


def _github_error(status: int, message: str) -> Response:
    return json_response(
        {"message": message, "documentation_url": _GITHUB_DOCS, "status": str(status)}, status
    )


def _github_refusal(github_token: str) -> Response | None:
    """GitHub's answer to a missing or refused token (`error-401`, `error-403` inside it
    script the refusals), or None."""
    if not github_token:
        return _github_error(401, "Requires authentication")
    if "error-401" in github_token:
        return _github_error(401, "Bad credentials")
    if "error-403" in github_token:
        return json_response(
            {
                "can_signup_for_limited": False,
                "error_details": {
                    "url": "https://support.github.com?editor={EDITOR}",
                    "message": "Contact Support. You are currently logged in as mock-user.",
                    "title": "Contact Support",
                    "notification_id": "feature_flag_blocked",
                },
                "message": "Resource not accessible by integration.",
            },
            403,
        )
    return None


def _github_token(request: Request) -> str:
    """The GitHub token of `Authorization: token <t>` (GitHub takes `Bearer` too)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() not in ("token", "bearer") or not token.startswith(("gho_", "ghu_")):
        return ""
    return token


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _token_answer(token: str, expires_at: int, lifetime: int, base: str) -> dict[str, Any]:
    """GitHub's answer, fields in its order; `refresh_in` is five minutes before expiry
    for real lifetimes (1800 s → 1500 s), half the life for the short ones of tests."""
    refresh_in = lifetime - 300 if lifetime > 600 else max(1, lifetime // 2)
    tracking_id = token.split(";", 1)[0].removeprefix("tid=")
    return {
        "annotations_enabled": True,
        "blackbird_clientside_indexing": False,
        "chat_enabled": True,
        "chat_jetbrains_enabled": True,
        "code_quote_enabled": True,
        "code_review_enabled": False,
        "codesearch": False,
        "copilotignore_enabled": False,
        "endpoints": {
            "api": f"{base}/copilot",
            "origin-tracker": f"{base}/copilot/origin-tracker",
            "proxy": f"{base}/copilot/proxy",
            "telemetry": f"{base}/copilot/telemetry",
        },
        "expires_at": expires_at,
        "individual": True,
        "limited_user_quotas": None,
        "limited_user_reset_date": None,
        "prompt_8k": True,
        "public_suggestions": "disabled",
        "refresh_in": refresh_in,
        "sku": "yearly_subscriber",
        "snippy_load_test_enabled": False,
        "telemetry": "disabled",
        "token": token,
        "tracking_id": tracking_id,
        "vsc_electron_fetcher_v2": False,
        "xcode": False,
        "xcode_chat": False,
    }


def _model(name: str, display: str, vendor: str, context: int, vision: bool) -> dict[str, Any]:
    limits: dict[str, Any] = {
        "max_context_window_tokens": context,
        "max_output_tokens": 16_384,
        "max_prompt_tokens": context - 16_384,
    }
    if vision:
        limits["vision"] = {
            "max_prompt_image_size": 3_145_728,
            "max_prompt_images": 1,
            "supported_media_types": ["image/jpeg", "image/png", "image/webp", "image/gif"],
        }
    return {
        "capabilities": {
            "family": name,
            "limits": limits,
            "object": "model_capabilities",
            "supports": {
                "parallel_tool_calls": True,
                "streaming": True,
                "structured_outputs": True,
                "tool_calls": True,
                "vision": vision,
            },
            "tokenizer": "o200k_base",
            "type": "chat",
        },
        "id": name,
        "is_chat_default": name == "gpt-4.1",
        "is_chat_fallback": name == "gpt-4.1",
        "model_picker_enabled": True,
        "name": display,
        "object": "model",
        "policy": {"state": "enabled", "terms": f"Enable access to {display} in GitHub Copilot."},
        "preview": False,
        "vendor": vendor,
        "version": name,
    }


def _quota(quota_id: str, entitlement: int, remaining: int, now: str) -> dict[str, Any]:
    unlimited = entitlement < 0
    return {
        "entitlement": 0 if unlimited else entitlement,
        "overage_count": 0,
        "overage_permitted": False,
        "percent_remaining": 100.0 if unlimited else round(100.0 * remaining / entitlement, 1),
        "quota_id": quota_id,
        "quota_remaining": 0.0 if unlimited else float(remaining),
        "remaining": 0 if unlimited else remaining,
        "timestamp_utc": now,
        "unlimited": unlimited,
    }


def _user_answer(base: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    reset = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "access_type_sku": "yearly_subscriber",
        "analytics_tracking_id": "0123456789abcdef0123456789abcdef",
        "assigned_date": "2025-01-01T00:00:00+00:00",
        "can_signup_for_limited": False,
        "chat_enabled": True,
        "copilot_plan": "individual",
        "endpoints": {"api": f"{base}/copilot"},
        "login": "mock-user",
        "organization_list": [],
        "organization_login_list": [],
        "quota_reset_date": reset.strftime("%Y-%m-%d"),
        "quota_reset_date_utc": reset.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "quota_snapshots": {
            "chat": _quota("chat", -1, 0, stamp),
            "completions": _quota("completions", -1, 0, stamp),
            "premium_interactions": _quota("premium_interactions", 300, 240, stamp),
        },
    }


def routes(state: MockState) -> list[Route]:
    book = TokenBook(state.settings.copilot_token_seconds)
    dialect = CopilotDialect()

    def github_token(request: Request) -> tuple[str, Response | None]:
        """The caller's GitHub token, or GitHub's refusal of it (recorded either way)."""
        token = _github_token(request)
        record = state.record(request, "copilot", token, None)
        refused = _github_refusal(token)
        record["outcome"] = "rejected" if refused is not None else "completed"
        return token, refused

    async def token(request: Request) -> Response:
        token, refused = github_token(request)
        if refused is not None:
            return refused
        copilot_token, expires_at = book.issue(token, request.url.netloc)
        state.mint("Copilot token", copilot_token)
        return json_response(_token_answer(copilot_token, expires_at, book.lifetime, _base_url(request)))

    async def user(request: Request) -> Response:
        _, refused = github_token(request)
        return refused or json_response(_user_answer(_base_url(request)))

    def copilot_rules(prompt: Prompt, request: Request) -> None:
        refusal = book.refusal(dialect.key(request))
        if refusal is not None:
            raise refusal
        if not request.headers.get("editor-version"):
            raise Reply(400, b"bad request: missing Editor-Version header for IDE auth\n", _TEXT)
        if not request.headers.get("copilot-integration-id"):
            raise Reply(400, b"bad request: missing required Copilot-Integration-Id header\n", _TEXT)

    async def chat_completions(request: Request) -> Response:
        return await serve(state, dialect, request, copilot_rules)

    async def models(request: Request) -> Response:
        refusal = book.refusal(dialect.key(request))
        if refusal is not None:
            return json_response(refusal.body, refusal.status, refusal.headers)
        return json_response({"data": [_model(*spec) for spec in MODELS], "object": "list"})

    return [
        Route("/copilot_internal/v2/token", token, methods=["GET"]),
        Route("/copilot_internal/user", user, methods=["GET"]),
        Route("/copilot/chat/completions", chat_completions, methods=["POST"]),
        Route("/copilot/models", models, methods=["GET"]),
    ]
