"""Read, interpolate and validate the configuration file.

Strings may reference the environment as `${NAME}` (required) or `${NAME:-default}`;
a reference is also satisfied by `NAME_FILE`, the path of a file holding the value
(docker secrets), read as the settings read theirs.
Every problem is reported with the file, the key path, the line and what was expected:
an unknown key with the valid key closest to it, a value outside a fixed set with the
set's values.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import msgspec
import yaml

from llmbus.config.errors import ConfigError, ConfigProblem, did_you_mean
from llmbus.config.model import Config, ProviderConfig
from llmbus.config.normalize import normalize
from llmbus.config.settings import SettingsError, read_variable

__all__ = ["load_config", "parse_config"]

T = TypeVar("T")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`")
_MISSING_FIELD = re.compile(r"Object missing required field `(.*)`")
_BAD_ENUM = re.compile(r"Invalid enum value (.*)")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load the file at `path`; raise ConfigError naming every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot read the file: {exc.strerror}")]) from None
    return parse_config(text, file, environ)


def parse_config(text: str, file: str = "<config>", environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {problem}", line, column)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(file, "", "expected a mapping of keys at the top level")])
    problems: list[ConfigProblem] = []
    data = _interpolate(raw, env, [], problems, file, node)
    if problems:
        raise ConfigError(problems)
    providers = data.pop("providers", None) or {}
    config = _convert(data, Config, [], file, node, problems)
    if not isinstance(providers, dict):
        line, column = _locate(node, ["providers"])
        problems.append(
            ConfigProblem(file, "providers", "expected a mapping of provider names", line, column)
        )
        providers = {}
    converted: dict[str, ProviderConfig] = {}
    for name, entry in providers.items():
        provider = _convert(entry or {}, ProviderConfig, ["providers", str(name)], file, node, problems)
        if provider is not None:
            converted[str(name)] = provider
    if problems or config is None:
        raise ConfigError(problems)
    config = normalize(msgspec.structs.replace(config, providers=converted), file, problems)
    if problems:
        raise ConfigError([_located(problem, node) for problem in problems])
    return config


def _convert(
    data: Any,
    type_: type[T],
    keys: list[str | int],
    file: str,
    root: yaml.Node | None,
    problems: list[ConfigProblem],
) -> T | None:
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_PATH.search(message)
        text = message[: match.start()] if match else message
        inner = _split_path(match.group(1) if match else "")
        full = [*keys, *inner]
        line, column = _locate(root, full)
        if unknown := _UNKNOWN_FIELD.fullmatch(text):
            key = unknown.group(1)
            text = f"unknown key `{key}`" + did_you_mean(key, _keys_at(type_, tuple(inner)))
            line, column = _locate_key(root, full, key) or (line, column)
        elif missing := _MISSING_FIELD.fullmatch(text):
            text = f"missing required key `{missing.group(1)}`"
        elif bad := _BAD_ENUM.fullmatch(text):
            values = _literals_at(type_, tuple(inner))
            text = f"invalid value {bad.group(1)}" + (
                f"; expected one of: {', '.join(values)}" if values else ""
            )
        problems.append(ConfigProblem(file, _dotted(full), text, line, column))
        return None


# --- what the model accepts at a key path, for the wording of errors --------------------


def _members(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union (`str | ModelEntry`), or the hint itself."""
    return get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


@cache
def _hints(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """Encoded key (`api-key`, `base-url`) → type hint of a Struct's fields."""
    hints = typing.get_type_hints(struct)
    return {
        encoded: hints[field]
        for field, encoded in zip(struct.__struct_fields__, struct.__struct_encode_fields__, strict=True)
    }


def _structs(hint: Any) -> list[type[msgspec.Struct]]:
    return [m for m in _members(hint) if isinstance(m, type) and issubclass(m, msgspec.Struct)]


def _hint_at(root: Any, keys: tuple[str | int, ...]) -> Any:
    """The type hint the model declares at `keys` below `root`; None where it names none."""
    hint = root
    for key in keys:
        step: Any = None
        for member in _members(hint):
            origin = get_origin(member)
            if isinstance(key, int) and origin is list:
                step = get_args(member)[0]
            elif isinstance(key, str) and origin is dict:
                step = get_args(member)[1]
            elif isinstance(key, str):
                step = next((_hints(s)[key] for s in _structs(member) if key in _hints(s)), None)
            if step is not None:
                break
        if step is None:
            return None
        hint = step
    return hint


def _keys_at(root: Any, keys: tuple[str | int, ...]) -> list[str]:
    """The keys an object at `keys` accepts."""
    return [key for struct in _structs(_hint_at(root, keys)) for key in _hints(struct)]


def _literals_at(root: Any, keys: tuple[str | int, ...]) -> list[str]:
    """The values a fixed-set key at `keys` accepts, in the model's order."""
    return [
        str(value)
        for member in _members(_hint_at(root, keys))
        if get_origin(member) is Literal
        for value in get_args(member)
    ]


def _interpolate(
    value: Any,
    env: Mapping[str, str],
    keys: list[str | int],
    problems: list[ConfigProblem],
    file: str,
    root: yaml.Node | None,
) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            try:
                value = read_variable(name, env)
            except SettingsError as exc:
                line, column = _locate(root, keys)
                problems.append(ConfigProblem(file, _dotted(keys), str(exc), line, column))
                return ""
            if value:
                return value
            if default is not None:
                return default
            line, column = _locate(root, keys)
            problems.append(
                ConfigProblem(file, _dotted(keys), f"environment variable {name} is not set", line, column)
            )
            return ""

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, [*keys, k], problems, file, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, [*keys, i], problems, file, root) for i, v in enumerate(value)]
    return value


def _located(problem: ConfigProblem, root: yaml.Node | None) -> ConfigProblem:
    """The problem with the line and column of its dotted key path (`a[0].b`)."""
    if problem.line is not None:
        return problem
    keys: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", problem.path):
        keys.append(int(index) if index else name)
    line, column = _locate(root, keys)
    return ConfigProblem(problem.file, problem.path, problem.message, line, column)


def _split_path(path: str) -> list[str | int]:
    keys: list[str | int] = []
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]", path):
        name, index, quoted = part
        if index:
            keys.append(int(index))
        else:
            keys.append(name or quoted)
    return keys


def _dotted(keys: list[str | int]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _node_at(node: yaml.Node | None, keys: list[str | int]) -> yaml.Node | None:
    """The deepest node the key path reaches."""
    if node is None:
        return None
    current = node
    for key in keys:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == key:
                    child = value_node
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(key, int) and key < len(current.value):
            child = current.value[key]
        if child is None:
            break
        current = child
    return current


def _locate(node: yaml.Node | None, keys: list[str | int]) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the deepest node the key path reaches."""
    current = _node_at(node, keys)
    if current is None:
        return None, None
    return current.start_mark.line + 1, current.start_mark.column + 1


def _locate_key(node: yaml.Node | None, keys: list[str | int], key: str) -> tuple[int, int] | None:
    """Line and column of `key` itself in the mapping at `keys` (an unknown key's place)."""
    mapping = _node_at(node, keys)
    if isinstance(mapping, yaml.MappingNode):
        for key_node, _ in mapping.value:
            if key_node.value == key:
                return key_node.start_mark.line + 1, key_node.start_mark.column + 1
    return None
