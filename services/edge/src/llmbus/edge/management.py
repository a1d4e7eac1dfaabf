"""The management key and who may present it.

The key authorises the management API. It is kept only as a SHA-256 digest (hashed once
when the config is loaded or reloaded) and a presented key is compared with it in
constant time. The API answers loopback clients only, unless the config's
`remote-management` allows more (`allow-remote`, narrowed by `allowed-cidrs`).

Repeated wrong keys lock a source out; that count lives in auth (Redis), so it holds on
every edge: see `llmbus.auth.lockouts`."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from llmbus.config import RemoteManagementConfig

__all__ = ["ManagementKey"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOCAL_ONLY = RemoteManagementConfig()


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ManagementKey:
    def __init__(self, key: str = "", remote: RemoteManagementConfig = _LOCAL_ONLY) -> None:
        self._digest = b""
        self._allow_remote = False
        self._networks: tuple[_Network, ...] = ()
        self.set(key, remote)

    def set(self, key: str, remote: RemoteManagementConfig = _LOCAL_ONLY) -> None:
        self._digest = hashlib.sha256(key.encode()).digest() if key else b""
        self._allow_remote = remote.allow_remote
        self._networks = tuple(ipaddress.ip_network(c, strict=False) for c in remote.allowed_cidrs)

    @property
    def configured(self) -> bool:
        return bool(self._digest)

    def admits(self, host: str) -> bool:
        """May a client at `host` (the peer address, not a forwarded header, which any
        client can write) call the management API at all?"""
        address = _address(host)
        if address is None:
            return False
        if address.is_loopback:
            return True
        if not self._allow_remote:
            return False
        return not self._networks or any(address in network for network in self._networks)

    def sign(self, message: bytes) -> bytes:
        """A MAC of `message` under a secret derived from the key: what the console's
        session cookies carry, so that every edge process verifies them, and changing
        the key ends every session. Empty when no key is configured."""
        if not self._digest:
            return b""
        return hmac.new(self._digest, b"llmbus-console\0" + message, hashlib.sha256).digest()

    def matches(self, presented: str | None) -> bool:
        if not self._digest or not presented:
            return False
        return hmac.compare_digest(self._digest, hashlib.sha256(presented.encode()).digest())
