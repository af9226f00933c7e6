"""Strict conversion of plain dicts (what `yaml.safe_load` returns) into frozen config dataclasses.

Owns the conversion rules of the strategy config loader: each value is converted to its field's
annotated type (bool, int, float, str, StrEnum, tuple of symbols, read-only mapping, nested
dataclass, `X | None`), and an unknown key or a wrong value raises `StrategyConfigError` naming
the full key path. The schema itself lives in `strategies.config`, which re-exports
`StrategyConfigError` and `FrozenMap`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Any

_POSITIVE_INT_SUFFIX = "_window"


class StrategyConfigError(ValueError):
    """The strategy YAML is invalid; the message names the source and the key path."""


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping that pickles (configs cross process boundaries, e.g. to Ray actors)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))



def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str) -> Mapping[Any, Any]:
    """Return `value` as a mapping (None reads as empty), or raise naming `path`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StrategyConfigError(f"{path}: expected a mapping, got {value!r}")
    return value


def _check_keys(data: Mapping[Any, Any], allowed: Collection[str], path: str) -> None:
    """Raise `unknown key <path>.<key>` for the first key of `data` not in `allowed`."""
    for key in data:
        if key not in allowed:
            raise StrategyConfigError(f"unknown key {_join(path, str(key))}")


def _enum(tp: type[StrEnum], value: Any, path: str) -> StrEnum:
    try:
        return tp(str(value).strip().lower()) if isinstance(value, str) else tp(value)
    except ValueError:
        allowed = ", ".join(m.value for m in tp)
        raise StrategyConfigError(f"{path}: {value!r} is not one of {allowed}") from None


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise StrategyConfigError(f"{path}: expected true/false, got {value!r}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrategyConfigError(f"{path}: expected an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise StrategyConfigError(f"{path}: expected an integer, got {value!r}")
    out = int(value)
    if path.endswith(_POSITIVE_INT_SUFFIX) and out < 1:
        raise StrategyConfigError(f"{path}: window must be >= 1, got {out}")
    return out


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrategyConfigError(f"{path}: expected a finite number, got {value!r}")
    return float(value)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise StrategyConfigError(f"{path}: expected a string, got {value!r}")
    return value


_SCALARS: dict[type, Callable[[Any, str], Any]] = {bool: _bool, int: _int, float: _float, str: _str}


def _scalar(tp: Any, value: Any, path: str) -> Any:
    """Convert one YAML scalar to the annotated type, or raise naming the key path."""
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _enum(tp, value, path)
    convert = _SCALARS.get(tp)
    if convert is None:
        raise StrategyConfigError(f"{path}: unsupported field type {tp!r}")  # schema bug
    return convert(value, path)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, path)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise StrategyConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_scalar(str, v, f"{path}[{i}]").strip().upper() for i, v in enumerate(value))
    if origin is Mapping or tp is Mapping:
        if not isinstance(value, Mapping):
            raise StrategyConfigError(f"{path}: expected a mapping, got {value!r}")
        return _freeze(value)
    if value is None:
        raise StrategyConfigError(f"{path}: must not be null")
    return _scalar(tp, value, path)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenMap({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys and bad values raise with their path."""
    data = _mapping(data, path or "<root>")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise StrategyConfigError(f"unknown key {_join(path, str(key))}")
        kwargs[key] = _convert(hints[key], value, _join(path, key))
    return cls(**kwargs)
