"""The gateway's management API as the CLI uses it: one small HTTP client that sends the
management key and turns error bodies into one readable line."""

from __future__ import annotations

from typing import Any

import httpx2
import msgspec

__all__ = ["Gateway", "GatewayError"]

_decode = msgspec.json.Decoder().decode


class GatewayError(Exception):
    """The gateway refused the call or could not be reached; the message says why."""


class Gateway:
    def __init__(
        self,
        url: str,
        management_key: str,
        timeout: float = 30.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = httpx2.Client(
            base_url=self.url,
            transport=transport,
            headers={"Authorization": f"Bearer {management_key}"} if management_key else {},
            timeout=timeout,
        )

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        """The decoded JSON answer of a 2xx; `GatewayError` otherwise."""
        try:
            response = self._client.request(
                method,
                path,
                content=msgspec.json.encode(body) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except httpx2.HTTPError as exc:
            raise GatewayError(f"cannot reach the gateway at {self.url}: {type(exc).__name__}") from None
        data: Any = _decode(response.content) if response.content else None
        if response.status_code >= 400:
            detail = data.get("error") if isinstance(data, dict) else None
            message = detail.get("message") if isinstance(detail, dict) else response.text[:200]
            raise GatewayError(f"{response.status_code}: {message}")
        return data
