"""The NATS users of a local stack (`make run`, the test suites), with passwords made for
this run only: the servers and services get them through the environment, never a file."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from llmbus.bus.access import ROLES, BusUser, Permissions, Role, authorization, password_variable
from llmbus.testing.leaks import SECRETS

__all__ = ["HARNESS", "BusUsers", "new_password"]

HARNESS = "harness"
"""The test harness's own user: it plays every service at once (integration tests wire
handlers of several services to one connection), so it may use every subject. Never part
of `make run` or compose."""

_EVERYTHING = Permissions(publish=(">",), subscribe=(">",))


def new_password() -> str:
    """A random password that nats-server reads back unchanged from a `$VARIABLE`
    reference: it parses the value as config, so no leading `-` (a number), no spaces;
    a letter, then hex digits."""
    return "p" + secrets.token_hex(24)


@dataclass(frozen=True)
class BusUsers:
    """User name → (role, password) for one NATS server and the services that use it."""

    users: Mapping[str, tuple[Role, str]]

    @classmethod
    def generate(cls, *, edges: Sequence[str] = ("edge", "edge-2"), harness: bool = False) -> BusUsers:
        """A user per service and per edge in `edges` (and the harness's, when asked),
        each with a fresh random password, remembered for the log scan."""
        users: dict[str, tuple[Role, str]] = {}
        names: list[tuple[str, Role]] = [(edge, "edge") for edge in edges]
        names += [(role, role) for role in ROLES if role != "edge"]
        if harness:
            names.append((HARNESS, "edge"))
        for name, role in names:
            password = new_password()
            SECRETS.add(password, f"NATS password of {name}")
            users[name] = (role, password)
        return cls(users)

    def authorization(self) -> str:
        """The server config's `authorization` block (passwords as variable references)."""
        return authorization(
            [
                BusUser(name, role, grant=_EVERYTHING if name == HARNESS else None)
                for name, (role, _) in self.users.items()
            ]
        )

    def server_env(self) -> dict[str, str]:
        """What the nats-server process needs to resolve the block's references."""
        return {password_variable(name): password for name, (_, password) in self.users.items()}

    def service_env(self, name: str, role: Role) -> dict[str, str]:
        """The settings of a service process: user `name` when there is one (a second edge
        has a user of its own), else its role's user."""
        user = name if name in self.users else role
        return {"LLMBUS_NATS_USER": user, "LLMBUS_NATS_PASSWORD": self.users[user][1]}

    def password(self, name: str) -> str:
        return self.users[name][1]

    def url(self, base: str, name: str) -> str:
        """`base` (`nats://host:port`) with `name`'s credentials in it."""
        parts = urlsplit(base)
        return urlunsplit(parts._replace(netloc=f"{name}:{self.password(name)}@{parts.netloc}"))
