"""The one way every configuration dataclass is built, checked, and read from / written to YAML.

:func:`build_config` turns a plain (nested) dict into a config dataclass: fields whose type is itself a
dataclass are built recursively, every value is checked against its field's type, unknown keys and the
dataclass's own validation errors become a one-line ``ValueError`` naming the source (a file, "command
line", a checkpoint). ``posediffusion.config`` re-exports these names.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posediffusion.io_utils import write_text_atomic

C = TypeVar("C")


def build_config(cls: type[C], values: Any, source: str) -> C:
    """Instantiate dataclass ``cls`` from a (nested) dict, the one way every config is built.

    Fields whose type is itself a config dataclass are built recursively from dicts. Unknown keys, a value
    that is not a mapping, and every error of the dataclass's own validation become a one-line
    ``ValueError`` naming ``source`` (a file, "command line", a checkpoint).
    """
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    values = {k: build_config(hints[k], v or {}, f"{source}: {k}")
              if dataclasses.is_dataclass(hints[k]) and not dataclasses.is_dataclass(v) else v
              for k, v in values.items()}
    for key, value in values.items():
        if not _matches(value, hints[key]):
            raise ValueError(f"{source}: {key} must be {_type_name(hints[key])}, got {value!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        message = str(err)
        raise ValueError(message if message.startswith(source) else f"{source}: {message}") from err


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as read from YAML/JSON/the command line) fits the field type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is Any or dataclasses.is_dataclass(hint):
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):  # an int is a valid float; a bool is neither
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return names.get(hint, "a mapping" if origin is dict else getattr(hint, "__name__", str(hint)))


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists: YAML/JSON friendly)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_config_yaml(cls: type[C], path: str | Path) -> C:
    """Read a YAML config of dataclass ``cls`` (unknown keys and bad values: an error naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not valid YAML ({first})") from err
    return build_config(cls, {} if values is None else values, str(path))


def save_config_yaml(config: Any, path: str | Path) -> None:
    """Write a config dataclass as YAML atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
