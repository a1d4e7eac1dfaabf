"""Typed service settings read once from the environment.

Every field of a settings class is read from `LLMBUS_<FIELD NAME IN UPPER CASE>`;
values are converted to the field's type and validated when the service starts, and a
bad value fails fast with the variable's name. The OpenTelemetry SDK reads the standard
`OTEL_*` variables itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

import msgspec

__all__ = ["ServiceSettings", "SettingsError"]

PREFIX = "LLMBUS_"


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

    @classmethod
    def env_vars(cls) -> tuple[str, ...]:
        """The environment variables this settings class reads."""
        return tuple(PREFIX + name.upper() for name in cls.__struct_fields__)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            var = PREFIX + name.upper()
            if var in env:
                raw[name] = env[var]
        raw.update(overrides)
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_the_variable(str(exc))) from None


def _name_the_variable(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`": name the variable instead.
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    field = path.rstrip("`").split(".")[0].split("[")[0]
    return f"{PREFIX}{field.upper()}: {head}"
