"""Who may say what on the bus: one NATS user per service, each allowed its own subjects.

The rules below name, for every subject of the table in `llmbus.proto.subjects`, the
services that publish on it and the services that subscribe to it; `authorization()`
renders them as the `authorization { users [...] }` block of a nats-server config. Every
subject of the table must have a rule: rendering refuses a table with a subject that has
none, so a new subject cannot be left out (nobody could use it) or left open.

Replies travel on inboxes. Each user's inboxes live under a prefix of its own,
`_INBOX.<user>` (`connect` sets it from the user name), and a user may subscribe only
there: one edge cannot read the answers streamed to another edge. The services that
answer requests (router, worker, auth) may publish to any inbox; the edge answers none.
Several edges each get a user of their own (`edge`, `edge-2`, ...) for that reason;
replicas of the other services share their service's user. A service that reads a
JetStream stream (auth, the usage records) may make the JetStream API requests for that
stream and its own durable consumer only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from llmbus.proto import subjects

__all__ = [
    "ROLES",
    "BusUser",
    "Permissions",
    "Role",
    "UnruledSubject",
    "authorization",
    "inbox_prefix",
    "password_variable",
    "permissions",
    "service_users",
]

Role = Literal["edge", "router", "worker", "auth"]
ROLES: Final[tuple[Role, ...]] = ("edge", "router", "worker", "auth")

EDGE: Final = ("edge",)
ROUTER: Final = ("router",)
WORKER: Final = ("worker",)
AUTH: Final = ("auth",)

INBOXES = "_INBOX"
_ANSWERING: Final[frozenset[str]] = frozenset({"router", "worker", "auth"})
"""Roles that answer requests (or stream frames) into other services' inboxes."""


class UnruledSubject(LookupError):
    """A subject of the table has no rule here: say who publishes it and who listens."""


@dataclass(frozen=True, slots=True)
class Rule:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    own_token: str = ""
    """A placeholder that each publisher fills with its own role (`health.v1.{service}`):
    a service announces only itself."""


_RULES: Final[Mapping[str, Rule]] = {
    # The request path: edge → router → worker, frames straight back to the edge's inbox.
    subjects.ROUTE.pattern: Rule(EDGE, ROUTER),
    # Workers hand a request over to the next provider themselves on failover.
    subjects.EXEC.pattern: Rule(ROUTER + WORKER, WORKER),
    subjects.CANCEL.pattern: Rule(EDGE, WORKER),
    subjects.CONTROL_REGISTRY.pattern: Rule(EDGE, ROUTER),
    subjects.HEALTH.pattern: Rule(EDGE + ROUTER + WORKER + AUTH, ROUTER, own_token="service"),
    subjects.WORKER_STATUS.pattern: Rule(WORKER, ROUTER),
    # Client keys: the edge asks, auth answers and announces revocations (to the edges
    # and to the other auth replicas, whose copies of the keys must not bring one back).
    subjects.AUTH_KEY_VERIFY.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_KEY_EVENTS.pattern: Rule(AUTH, EDGE + AUTH),
    subjects.AUTH_KEYS_CREATE.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_KEYS_LIST.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_KEYS_REVOKE.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_KEYS_USAGE.pattern: Rule(EDGE, AUTH),
    # One record per finished request, kept by the usage stream; auth reads it through
    # its durable consumer (the JetStream API rights of `_STREAM_READERS`).
    subjects.USAGE_REQUESTS.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_USAGE_QUERY.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_MANAGEMENT_ATTEMPT.pattern: Rule(EDGE, AUTH),
    # Stored responses (Responses API): the edge asks, auth answers.
    subjects.AUTH_RESPONSES_PUT.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_RESPONSES_GET.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_RESPONSES_DELETE.pattern: Rule(EDGE, AUTH),
    # Limits: admission at the edge, provider and credential scopes where they are known.
    subjects.AUTH_QUOTA_RESERVE.pattern: Rule(EDGE + ROUTER + WORKER, AUTH),
    subjects.AUTH_QUOTA_SETTLE.pattern: Rule(EDGE + ROUTER + WORKER, AUTH),
    # Management writes come from the edge only (behind the management key).
    subjects.AUTH_PROVIDER_TOGGLE.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_COOLDOWN_CLEAR.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_FLOW_START.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_FLOW_STATUS.pattern: Rule(EDGE, AUTH),
    subjects.AUTH_CREDENTIALS_REMOVE.pattern: Rule(EDGE, AUTH),
    # Reads of the runtime state.
    subjects.AUTH_STATE.pattern: Rule(EDGE + ROUTER + WORKER, AUTH),
    subjects.AUTH_CREDENTIALS_LIST.pattern: Rule(EDGE + ROUTER + WORKER, AUTH),
    # Tokens are for the workers that call the upstreams, nobody else.
    subjects.AUTH_TOKENS_GET.pattern: Rule(WORKER, AUTH),
    # Announcements.
    subjects.AUTH_COOLDOWN_EVENTS.pattern: Rule(WORKER + AUTH, ROUTER + WORKER + AUTH),
    subjects.AUTH_CREDENTIAL_EVENTS.pattern: Rule(AUTH, EDGE + ROUTER + WORKER),
    subjects.CONTROL_PROVIDER_ENABLED.pattern: Rule(AUTH, ROUTER + WORKER),
    subjects.CONTROL_COOLDOWNS.pattern: Rule(AUTH, ROUTER + WORKER),
    subjects.CONTROL_COOLDOWNS_CLEARED.pattern: Rule(AUTH, ROUTER + WORKER),
}


_STREAM_READERS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "auth": ((subjects.USAGE_STREAM, subjects.USAGE_CONSUMER),),
}
"""Role → the (stream, durable consumer) pairs it creates and reads. Only these: no
service may list, delete or purge streams, nor read another consumer."""


def _jetstream_api(stream: str, consumer: str) -> list[str]:
    """What creating `stream` and reading it through the durable `consumer` publishes:
    the JetStream API requests of `llmbus.bus.stream` and the acknowledgements."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.CREATE.{stream}",
        f"{api}.STREAM.UPDATE.{stream}",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.CONSUMER.INFO.{stream}.{consumer}",
        f"{api}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{api}.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _table() -> list[subjects.Topic[Any]]:
    """Every subject of the table (topics and endpoints), in the module's order."""
    return [value for value in vars(subjects).values() if isinstance(value, subjects.Topic)]


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one NATS user may publish and subscribe to (everything else is refused)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def inbox_prefix(user: str) -> str:
    """Where the reply inboxes of `user`'s connections live."""
    return f"{INBOXES}.{user}"


def permissions(role: Role, user: str | None = None) -> Permissions:
    """The subjects `user` (a service of `role`; default: the role's name) may use."""
    user = user or role
    publish: list[str] = []
    subscribe: list[str] = []
    for topic in _table():
        rule = _RULES.get(topic.pattern)
        if rule is None:
            raise UnruledSubject(
                f"subject {topic.pattern} has no rule in llmbus.bus.access: name who publishes and "
                "who subscribes to it"
            )
        if role in rule.publish:
            publish.append(topic.subject(**{rule.own_token: role}) if rule.own_token else topic.wildcard())
        if role in rule.subscribe:
            subscribe.append(topic.wildcard())
    for stream, consumer in _STREAM_READERS.get(role, ()):
        publish += _jetstream_api(stream, consumer)
    subscribe.append(inbox_prefix(user) + ".>")
    if role in _ANSWERING:
        publish.append(INBOXES + ".>")
    return Permissions(publish=tuple(dict.fromkeys(publish)), subscribe=tuple(dict.fromkeys(subscribe)))


def password_variable(user: str) -> str:
    """The environment variable that holds `user`'s password in a rendered config."""
    return "LLMBUS_NATS_" + user.upper().replace("-", "_") + "_PASSWORD"


@dataclass(frozen=True, slots=True)
class BusUser:
    """A NATS user: its name, the service it is, and where its password comes from."""

    name: str
    role: Role
    grant: Permissions | None = field(default=None)
    """Instead of the role's permissions: a test harness's user that plays every service."""

    @classmethod
    def of(cls, role: Role, name: str | None = None) -> BusUser:
        return cls(name or role, role)


def _listed(values: Iterable[str], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(value)}\n" for value in values)
    return f"[\n{inner}{indent}]"


def authorization(users: Sequence[BusUser]) -> str:
    """The nats-server `authorization` block for `users`.

    Passwords are not written into it: each is a reference to the environment variable
    `password_variable(user)`, which nats-server resolves when it reads its config, so
    the file itself holds no secret."""
    lines = ["authorization {", "  users = ["]
    for user in users:
        granted = user.grant or permissions(user.role, user.name)
        lines.append(
            f"    {{user: {json.dumps(user.name)}, password: ${password_variable(user.name)}, permissions: {{"
        )
        lines.append(f"      publish: {{allow: {_listed(granted.publish, '      ')}}}")
        lines.append(f"      subscribe: {{allow: {_listed(granted.subscribe, '      ')}}}")
        lines.append("    }}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def service_users(edges: Sequence[str] = ("edge",)) -> list[BusUser]:
    """One user per service, and one per edge named in `edges`."""
    return [*(BusUser(name, "edge") for name in edges), *(BusUser.of(r) for r in ROLES if r != "edge")]
