"""Typed service settings read once from the environment.

Every field of a settings class is read from `LLMBUS_<FIELD NAME IN UPPER CASE>`, or
from the file that `LLMBUS_<FIELD NAME>_FILE` names (docker secrets: a secret is then
never in the environment; one trailing newline is dropped). Values are converted to the
field's type and validated when the service starts, and a bad value fails fast with the
variable's name. The OpenTelemetry SDK reads the standard `OTEL_*` variables itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import msgspec

__all__ = ["FILE_SUFFIX", "ServiceSettings", "SettingsError", "read_variable"]

PREFIX = "LLMBUS_"
FILE_SUFFIX = "_FILE"


class SettingsError(ValueError):
    """A settings variable is missing or malformed; the message names the variable."""


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every service reads: where the config file and the bus are."""

    config: str = "config.yaml"
    nats_url: str = "nats://127.0.0.1:4222"
    log_level: str = "info"
    instance: str = ""
    dev: bool = False
    """Development mode (`make run` sets it): the shipped example keys, a bus without
    passwords and tokens stored with a development key are accepted. Outside it, a
    service refuses to start with any of them."""
    nats_user: str = ""
    """This service's NATS user (`edge`, `router`, `worker`, `auth`): its permissions
    allow the subjects this service uses and no others."""
    nats_password: str = ""
    """The NATS user's password; required outside development mode."""
    metrics_host: str = "127.0.0.1"
    """Where the `/metrics` port of the router, workers and auth binds: loopback unless
    a scraper elsewhere needs it (the edge serves `/metrics` on its own port)."""
    drain_seconds: float = 8.0
    """On SIGTERM, how long the work in flight (a worker's streams) may take to finish
    before it is cut; the service takes no new work meanwhile."""

    @classmethod
    def env_vars(cls) -> tuple[str, ...]:
        """The environment variables this settings class reads (each `_FILE` too)."""
        names = [PREFIX + name.upper() for name in cls.__struct_fields__]
        return (*names, *(name + FILE_SUFFIX for name in names))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            var = PREFIX + name.upper()
            value = read_variable(var, env)
            if value is not None:
                raw[name] = value
        raw.update(overrides)
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_the_variable(str(exc))) from None


def read_variable(name: str, env: Mapping[str, str]) -> str | None:
    """`name`'s value, or the contents of the file `<name>_FILE` names; None when neither
    is set. Setting both is an error: which one wins would be a guess (an empty value,
    as compose's `${NAME:-}` gives, counts as not set)."""
    file_var = name + FILE_SUFFIX
    if not env.get(file_var):
        return env.get(name)
    if env.get(name):
        raise SettingsError(f"{name} and {file_var} are both set: set one of them")
    path = env[file_var]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _name_the_variable(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`": name the variable instead.
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    field = path.rstrip("`").split(".")[0].split("[")[0]
    return f"{PREFIX}{field.upper()}: {head}"
