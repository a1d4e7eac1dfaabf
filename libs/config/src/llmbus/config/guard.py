"""What a service refuses to start with outside development mode.

The example file works out of the box (`make run`): its client and management keys are
public, and a local bus needs no password. Deployed like that, anyone who read the README
could call the gateway, manage it, or join the bus. So unless `LLMBUS_DEV=1` says this is
a development run, a service stops at start with an error naming what to set.
"""

from __future__ import annotations

from typing import Final

from llmbus.config.model import Config
from llmbus.config.settings import ServiceSettings, SettingsError

__all__ = ["EXAMPLE_KEYS", "UnsafeSettings", "refuse_unsafe", "unsafe_settings"]

EXAMPLE_KEYS: Final[frozenset[str]] = frozenset({"sk-llmbus-dev", "mk-llmbus-dev"})
"""The keys `config.example.yaml` falls back to (a unit test keeps this list equal to the
file's defaults)."""

_DEV_HINT = "or set LLMBUS_DEV=1 for a development run"


class UnsafeSettings(SettingsError):
    """The service would run with a public key or an open bus outside development mode."""


def unsafe_settings(settings: ServiceSettings, config: Config) -> list[str]:
    """One line per problem, each naming the setting to change; empty in development mode.
    The lines never quote a key: the setting's name is what the operator needs."""
    if settings.dev:
        return []
    problems: list[str] = []
    for index, client in enumerate(config.client_keys()):
        if client.key in EXAMPLE_KEYS:
            problems.append(
                f"api-keys[{index}] in {settings.config} is the example client key: set "
                "LLMBUS_CLIENT_KEY (or LLMBUS_CLIENT_KEY_FILE), or list your own key there"
            )
    if config.management_key in EXAMPLE_KEYS:
        problems.append(
            f"management-key in {settings.config} is the example management key: set "
            "LLMBUS_MANAGEMENT_KEY (or LLMBUS_MANAGEMENT_KEY_FILE), or write your own there"
        )
    for name, provider in config.providers.items():
        for index, credential in enumerate(provider.credentials()):
            if {credential.api_key, credential.github_token} & EXAMPLE_KEYS:
                problems.append(f"providers.{name} credential {index} in {settings.config} is an example key")
    if not settings.nats_password:
        problems.append(
            "LLMBUS_NATS_PASSWORD (or LLMBUS_NATS_PASSWORD_FILE) is not set: the bus would "
            f"carry prompts to anyone who can reach it; give {settings.nats_user or 'this service'}'s "
            "NATS password"
        )
    return problems


def refuse_unsafe(settings: ServiceSettings, config: Config) -> None:
    """Raise UnsafeSettings listing every problem (see `unsafe_settings`)."""
    problems = unsafe_settings(settings, config)
    if problems:
        raise UnsafeSettings(
            "refusing to start outside development mode:\n  " + "\n  ".join(problems) + f"\n  ({_DEV_HINT})"
        )
