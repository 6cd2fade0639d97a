"""Typed configuration: dataclasses are the truth, plain mappings (YAML, checkpoints) only set values.

``from_dict(cls, data)`` builds a (nested) dataclass from a mapping and refuses anything it
does not declare: an unknown key is an error naming its dotted path, a wrong type an error
naming the path, the expected type and the value. ``to_dict`` is the inverse, with tuples as
lists so the result is plain YAML/JSON. The training config and the checkpoint loader both use
this, so a config written by a run is read back without any flags.

Supported field types: ``bool``, ``int``, ``float`` (an int is accepted, and so is a string
that is a plain number such as ``1e-4``, which YAML 1.1 reads as a string), ``str``,
``Literal[...]``, ``X | None``, ``tuple[X, ...]``/``tuple[X, Y]``, ``list[X]``, ``dict[K, V]`` and
nested dataclasses. A ``ValueError`` raised by a dataclass's ``__post_init__`` becomes a
``ConfigError`` naming the section.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

from elastogan.errors import UserError

T = TypeVar("T")

_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(UserError):
    """A configuration value or key that the typed config does not accept."""


def _where(path: str) -> str:
    return f"'{path}'" if path else "the top level"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list, dict):
        args = typing.get_args(tp)
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(
        f"{source}: {_where(path)} expects {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise bad
        return from_dict(tp, value, path=path, source=source)
    if origin is Literal:
        if any(type(a) is type(value) and a == value for a in typing.get_args(tp)):
            return value
        raise bad
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, source)
            except ConfigError:
                continue
        raise bad
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise bad
        return {_convert(key_type, k, f"{path}.{k}", source): _convert(value_type, v, f"{path}.{k}", source)
                for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = typing.get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_convert(args[0], v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        else:
            if len(value) != len(args):
                raise bad
            items = [_convert(a, v, f"{path}[{i}]", source) for i, (a, v) in enumerate(zip(args, value))]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads ``1e-4`` (no dot) as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{source}: {_where(path)} must be a finite number, got {value!r}")
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Any:
        return value
    raise TypeError(f"typed_config does not support the type {tp!r} of {path}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, path: str = "", source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults.

    Args:
        cls: a dataclass type (fields may be nested dataclasses).
        data: the values to set.
        path: dotted path of ``data`` inside the whole config, for messages.
        source: what the values came from (a file name), for messages.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a value the dataclass's own
            checks refuse.

    Example:
        >>> @dataclasses.dataclass
        ... class Optim:
        ...     lr: float = 1e-3
        >>> from_dict(Optim, {"lr": 2e-4})
        Optim(lr=0.0002)
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {_where(path)} expects a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(f"{source}: unknown key '{sub}'; known keys here: {known}")
        kwargs[key] = _convert(hints[key], value, sub, source)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        # The dataclasses' own checks name their dotted field (``model.name must be ...``).
        raise ConfigError(f"{source}: {e}") from None


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested values) as plain dicts, lists and scalars, in field order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
