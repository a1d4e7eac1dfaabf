"""Credentials auth keeps, as a router sees them: device-flow logins that join their
provider's candidates beside the config's credentials, and the health of every stored
one (config imports included), from `RuntimeState.credentials` at start and
`CredentialEvent`s after.

A provider with no configured credential becomes routable once someone logs in; an
unhealthy credential (its refresh failed) is skipped until auth says it is healthy again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmbus.config import CredentialEntry
from llmbus.proto import CredentialEvent, CredentialInfo
from llmbus.providers import AuthType, ConfiguredProvider

__all__ = ["StoredCredentials"]

_CAN_LOG_IN = (AuthType.OAUTH_DEVICE_FLOW, AuthType.TOKEN_FILE)


@dataclass(slots=True)
class StoredCredentials:
    known: dict[str, dict[str, CredentialInfo]] = field(default_factory=dict)
    """provider → credential id → what auth last said of it."""
    _announced: set[tuple[str, str]] = field(default_factory=set)
    """Credentials an event has spoken of: a snapshot taken earlier does not overrule it."""

    def apply(self, event: CredentialEvent) -> None:
        info = event.credential
        self._announced.add((info.provider, info.id))
        if event.action == "removed":
            self.known.get(info.provider, {}).pop(info.id, None)
        else:
            self.known.setdefault(info.provider, {})[info.id] = info

    def load(self, credentials: list[CredentialInfo]) -> None:
        """Auth's snapshot, for a router that starts: events already seen are newer."""
        for info in credentials:
            if (info.provider, info.id) not in self._announced:
                self.known.setdefault(info.provider, {})[info.id] = info

    @staticmethod
    def can_log_in(provider: ConfiguredProvider) -> bool:
        """Whether credentials may come from auth: a configured provider whose credentials
        are logins or token files (Copilot, Kiro)."""
        return provider.configured and provider.auth_type in _CAN_LOG_IN

    def info(self, provider: str, credential: str) -> CredentialInfo | None:
        return self.known.get(provider, {}).get(credential)

    def listed(self, provider: ConfiguredProvider) -> list[CredentialEntry]:
        """Every credential of the provider: the config's, then the logins (by id)."""
        stored = self.known.get(provider.name, {}) if self.can_log_in(provider) else {}
        configured = {entry.name for entry in provider.credentials}
        return [
            *provider.credentials,
            *(CredentialEntry(name=i) for i in sorted(stored) if i not in configured),
        ]

    def usable(self, provider: ConfiguredProvider) -> list[CredentialEntry]:
        """The credentials a request may be routed to: every listed one not unhealthy."""
        return [entry for entry in self.listed(provider) if self._healthy(provider.name, entry.name)]

    def unhealthy(self, provider: ConfiguredProvider) -> list[str]:
        """`<provider>/<credential>: <reason>` of each unhealthy credential."""
        out = []
        for entry in self.listed(provider):
            info = self.info(provider.name, entry.name)
            if info is not None and not info.healthy:
                out.append(f"{provider.name}/{entry.name}: {info.reason or 'unhealthy'}")
        return out

    def unroutable(self, provider: ConfiguredProvider) -> str | None:
        """The provider's own reason not to route (`unroutable_reason`), counting the
        credentials auth keeps: none at all, or every one unhealthy."""
        listed = self.listed(provider)
        if not provider.enabled or not listed:
            return provider.unroutable_reason
        if not self.usable(provider):
            return "every credential is unhealthy: " + "; ".join(self.unhealthy(provider))
        return None if provider.models else "no models"

    def document(self, provider: str, credential: str) -> dict[str, Any]:
        """What the status page shows of a stored credential (nothing for a config
        credential auth does not keep): its kind, account, health and quota."""
        info = self.info(provider, credential)
        if info is None:
            return {}
        document: dict[str, Any] = {
            "type": info.kind,
            "account": info.account or None,
            "healthy": info.healthy,
            "health_reason": info.reason or None,
            "expires_at": info.expires_at or None,
            "quota": dict(info.quota),
        }
        if not info.healthy:
            document["state"] = "unhealthy"
        return document

    def _healthy(self, provider: str, credential: str) -> bool:
        info = self.info(provider, credential)
        return info is None or info.healthy
