"""Kiro token files: read, refreshed ahead of expiry in either dialect, written back."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmbus.config import Config, CredentialEntry, ProviderConfig
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.credentials.kiro import KiroTokens, api_region
from llmbus.providers.errors import CredentialUnavailable
from llmbus.providers.http import HttpClient

NOW = 1_800_000_000.0
ARN = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF"

Handler = Callable[[httpx2.Request], httpx2.Response]


def provider(**fields: Any) -> ConfiguredProvider:
    config = Config(providers={"kiro": ProviderConfig(token_file="unused.json", **fields)})
    return configured_providers(config)["kiro"]


def token_file(tmp_path: Path, **fields: Any) -> CredentialEntry:
    data = {
        "accessToken": "aoa-old-access",
        "refreshToken": "aor-old-refresh",
        "expiresAt": "2020-01-01T00:00:00.000Z",
        "authMethod": "social",
        "provider": "Google",
        "profileArn": ARN,
        "ideExtra": {"kept": True},
        **fields,
    }
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(json.dumps(data))
    return CredentialEntry(name="kiro-1", token_file=str(path))


def saved(entry: CredentialEntry) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(entry.token_file).read_text())
    return data


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def rewrite(entry: CredentialEntry, **fields: Any) -> None:
    """What the IDE does: a new token in the file (with a new modification time)."""
    path = Path(entry.token_file)
    path.write_text(json.dumps({**saved(entry), **fields}))
    os.utime(path, ns=(1, 1))


class Recorder:
    def __init__(self, answer: Handler) -> None:
        self.requests: list[httpx2.Request] = []
        self.answer = answer

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answer(request)


def ok(**fields: Any) -> Handler:
    body = {"accessToken": "aoa-new-access", "refreshToken": "aor-new-refresh", "expiresIn": 3600, **fields}
    return lambda request: httpx2.Response(200, json=body)


async def run(entry: CredentialEntry, handler: Handler, target: ConfiguredProvider | None = None) -> Any:
    client = HttpClient(transport=httpx2.MockTransport(handler))
    try:
        return await KiroTokens(client, clock=lambda: NOW).get(target or provider(), entry)
    finally:
        await client.aclose()


async def test_an_expired_social_token_is_refreshed_and_written_back_keeping_unknown_fields(
    tmp_path: Path,
) -> None:
    entry = token_file(tmp_path)
    recorder = Recorder(ok())
    credential = await run(entry, recorder)

    (request,) = recorder.requests
    assert str(request.url) == "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken"
    assert json.loads(request.content) == {"refreshToken": "aor-old-refresh"}
    assert request.headers["user-agent"].startswith("KiroIDE-")
    assert credential.token == "aoa-new-access"
    assert credential.profile_arn == ARN
    assert credential.region == "eu-central-1"
    assert credential.expires_at == NOW + 3600
    written = saved(entry)
    assert written["accessToken"] == "aoa-new-access"
    assert written["refreshToken"] == "aor-new-refresh"
    assert written["expiresAt"] == "2027-01-15T09:00:00.000Z"
    assert written["ideExtra"] == {"kept": True}
    assert written["provider"] == "Google"
    assert files(tmp_path) == ["kiro-auth-token.json"]


async def test_a_fresh_token_is_used_without_any_call(tmp_path: Path) -> None:
    entry = token_file(tmp_path, expiresAt="2027-01-15T09:20:00.000000123Z")
    recorder = Recorder(ok())
    credential = await run(entry, recorder)
    assert recorder.requests == []
    assert credential.token == "aoa-old-access"


async def test_an_idc_token_refreshes_at_aws_oidc_with_the_client_of_its_client_id_hash(
    tmp_path: Path,
) -> None:
    entry = token_file(
        tmp_path, authMethod="IdC", provider="Enterprise", region="ap-southeast-2", clientIdHash="abc123"
    )
    (tmp_path / "abc123.json").write_text(json.dumps({"clientId": "cid", "clientSecret": "csecret"}))
    recorder = Recorder(ok())
    credential = await run(entry, recorder, provider(region="us-east-1"))

    (request,) = recorder.requests
    assert str(request.url) == "https://oidc.ap-southeast-2.amazonaws.com/token"
    assert json.loads(request.content) == {
        "clientId": "cid",
        "clientSecret": "csecret",
        "grantType": "refresh_token",
        "refreshToken": "aor-old-refresh",
    }
    assert credential.token == "aoa-new-access"
    assert credential.region == "eu-central-1"  # the profile ARN's, not the SSO region


async def test_auth_endpoint_replaces_the_base_of_either_dialect(tmp_path: Path) -> None:
    recorder = Recorder(ok())
    await run(token_file(tmp_path), recorder, provider(auth_endpoint="http://mock.test/"))
    idc = tmp_path / "idc"
    idc.mkdir()
    await run(
        token_file(idc, authMethod="IdC", clientId="cid", clientSecret="cs"),
        recorder,
        provider(auth_endpoint="http://mock.test"),
    )
    assert [str(r.url) for r in recorder.requests] == [
        "http://mock.test/refreshToken",
        "http://mock.test/token",
    ]


async def test_a_refused_refresh_is_credential_unavailable_without_any_token_in_the_message(
    tmp_path: Path,
) -> None:
    entry = token_file(tmp_path)

    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, json={"message": "Invalid refresh token provided: aor-old-refresh"})

    with pytest.raises(CredentialUnavailable) as raised:
        await run(entry, refuse)
    assert raised.value.upstream_status == 401
    assert raised.value.retryable
    assert "Invalid refresh token provided" in raised.value.message
    assert "aor-old" not in raised.value.message
    assert saved(entry)["accessToken"] == "aoa-old-access"


async def test_an_idc_token_without_a_client_registration_cannot_be_refreshed(tmp_path: Path) -> None:
    entry = token_file(tmp_path, authMethod="IdC", clientIdHash="missing")
    recorder = Recorder(ok())
    with pytest.raises(CredentialUnavailable, match="no OIDC client registration"):
        await run(entry, recorder)
    assert recorder.requests == []


async def test_a_missing_file_is_credential_unavailable(tmp_path: Path) -> None:
    entry = CredentialEntry(name="k", token_file=str(tmp_path / "nope.json"))
    with pytest.raises(CredentialUnavailable, match="does not exist"):
        await run(entry, ok())


async def test_concurrent_requests_share_one_refresh(tmp_path: Path) -> None:
    entry = token_file(tmp_path)
    calls = 0

    async def slow(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return ok()(request)

    client = HttpClient(transport=httpx2.MockTransport(slow))
    source = KiroTokens(client, clock=lambda: NOW)
    try:
        credentials = await asyncio.gather(*(source.get(provider(), entry) for _ in range(5)))
    finally:
        await client.aclose()
    assert calls == 1
    assert {c.token for c in credentials} == {"aoa-new-access"}


async def test_a_file_the_ide_refreshed_on_disk_is_read_again(tmp_path: Path) -> None:
    entry = token_file(tmp_path, expiresAt="2027-01-15T09:20:00Z")
    client = HttpClient(transport=httpx2.MockTransport(ok()))
    source = KiroTokens(client, clock=lambda: NOW)
    try:
        assert (await source.get(provider(), entry)).token == "aoa-old-access"
        rewrite(entry, accessToken="aoa-from-the-ide")
        assert (await source.get(provider(), entry)).token == "aoa-from-the-ide"
    finally:
        await client.aclose()


async def test_invalidate_forces_a_refresh_of_a_token_that_looked_fresh(tmp_path: Path) -> None:
    entry = token_file(tmp_path, expiresAt="2027-01-15T09:20:00Z")
    recorder = Recorder(ok())
    client = HttpClient(transport=httpx2.MockTransport(recorder))
    source = KiroTokens(client, clock=lambda: NOW)
    try:
        await source.get(provider(), entry)
        source.invalidate(provider(), entry)
        assert (await source.get(provider(), entry)).token == "aoa-new-access"
    finally:
        await client.aclose()
    assert len(recorder.requests) == 1


async def test_a_social_refresh_may_name_a_new_profile_arn(tmp_path: Path) -> None:
    entry = token_file(tmp_path, profileArn="")
    new_arn = "arn:aws:codewhisperer:us-east-1:999999999999:profile/NEW"
    credential = await run(entry, ok(profileArn=new_arn))
    assert credential.profile_arn == new_arn
    assert saved(entry)["profileArn"] == new_arn


def test_api_region_prefers_the_arn_then_the_config_then_the_file() -> None:
    assert api_region(ARN, "us-west-2", "ap-south-1") == "eu-central-1"
    assert api_region(None, "us-west-2", "ap-south-1") == "us-west-2"
    assert api_region("", None, "ap-south-1") == "ap-south-1"
    assert api_region(None, None, None) == "us-east-1"
