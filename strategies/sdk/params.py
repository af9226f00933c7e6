"""Typed strategy parameters: a frozen dataclass per strategy, with bounds, defaults and docs.

A strategy declares its parameters as a frozen, keyword-only dataclass deriving from
`StrategyParams`; each field is written once with `param(default, lo=..., hi=..., doc=...)`:

    @dataclass(frozen=True, kw_only=True, slots=True)
    class BreakoutParams(StrategyParams):
        channel_bars: int = param(20, lo=2, hi=1000, doc="entry channel length, bars")

`schema()` lists the fields as `ParamSpec` records (name, type, default, bounds, doc: what
`python -m strategies list --json` shows). `from_layers()` merges the YAML layers (defaults <
global < per symbol < variant overrides; later wins, keys are flat) and validates the result. Every
problem raises `StrategyParamError` naming the strategy, the symbol and the field, which the daemon
maps to exit 2. Supported field types: int (bool refused), float (int accepted, must be finite),
bool, str and `StrEnum` subclasses (parsed through the enum). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from strategies.sdk.errors import StrategyParamError

_META_KEY = "strategies.sdk.param"


@dataclass(frozen=True, slots=True)
class _Bounds:
    lo: float | None
    hi: float | None
    doc: str


def param(default: Any, *, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    """Declare one parameter field: its default, inclusive bounds (numbers only) and meaning."""
    return dataclasses.field(default=default, metadata={_META_KEY: _Bounds(lo, hi, doc)})


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter as the schema shows it (for listings, docs and YAML validation)."""

    name: str
    type: str  # "int" | "float" | "bool" | "str" | "enum"
    default: int | float | bool | str
    lo: float | None
    hi: float | None
    choices: tuple[str, ...]
    doc: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (enum defaults as their value)."""
        return dataclasses.asdict(self) | {"choices": list(self.choices)}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return "enum"
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(tp, "unsupported")


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an int, got {value!r}")
    return value


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return float(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


_COERCE = {"bool": _as_bool, "int": _as_int, "float": _as_float, "str": _as_str}


def _coerce(tp: Any, value: Any) -> Any:
    """Return `value` as type `tp`; raise ValueError with the problem (the caller adds context)."""
    kind = _type_name(tp)
    if kind == "enum":
        try:
            return tp(value)
        except (ValueError, TypeError):
            raise ValueError(f"{value!r} is not one of {[m.value for m in tp]}") from None
    if kind not in _COERCE:
        raise ValueError(f"field type {tp!r} is not supported (int, float, bool, str, StrEnum)")
    return _COERCE[kind](value)


def _check_bounds(value: Any, bounds: _Bounds | None) -> None:
    if bounds is None or not isinstance(value, int | float) or isinstance(value, bool):
        return
    if bounds.lo is not None and value < bounds.lo:
        raise ValueError(f"{value!r} is below the minimum {bounds.lo!r}")
    if bounds.hi is not None and value > bounds.hi:
        raise ValueError(f"{value!r} is above the maximum {bounds.hi!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StrategyParams:
    """Base of every strategy's parameter dataclass; validates on construction.

    Direct construction (`BreakoutParams(channel_bars=30)`) validates too, naming the class as
    the strategy; `from_layers`/`from_mapping` name the strategy and symbol they were given.
    Override `cross_check` for rules between fields.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = _coerce(hints[f.name], getattr(self, f.name))
                _check_bounds(value, f.metadata.get(_META_KEY))
            except ValueError as e:
                raise StrategyParamError(type(self).__name__, None, f.name, str(e)) from None
            object.__setattr__(self, f.name, value)
        problems = list(self.cross_check())
        if problems:
            raise StrategyParamError(type(self).__name__, None, *problems[0])

    def cross_check(self) -> Sequence[tuple[str, str]]:
        """Return (field, problem) pairs for rules between fields; empty when consistent."""
        return ()

    @classmethod
    def schema(cls) -> tuple[ParamSpec, ...]:
        """Return the parameter specs in declaration order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            bounds = f.metadata.get(_META_KEY, _Bounds(None, None, ""))
            tp = hints[f.name]
            choices = tuple(m.value for m in tp) if _type_name(tp) == "enum" else ()
            default = f.default.value if isinstance(f.default, StrEnum) else f.default
            out.append(ParamSpec(f.name, _type_name(tp), default, bounds.lo, bounds.hi, choices, bounds.doc))
        return tuple(out)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, strategy: str, symbol: str | None) -> Self:
        """Build from a flat mapping of overrides (missing keys take their default).

        Raises StrategyParamError naming strategy, symbol and field on an unknown key, a wrong
        type, a value out of bounds or a failed cross-field check.
        """
        if not isinstance(raw, Mapping):
            raise StrategyParamError(strategy, symbol, "<params>", f"must be a mapping, got {raw!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in raw:
            if key not in known:
                raise StrategyParamError(strategy, symbol, str(key), f"unknown parameter; known: {known}")
        try:
            return cls(**raw)
        except StrategyParamError as e:
            raise StrategyParamError(strategy, symbol, e.field, e.problem) from None

    @classmethod
    def from_layers(cls, layers: Sequence[Mapping[str, Any]], *, strategy: str, symbol: str | None) -> Self:
        """Merge flat override layers in order (later wins) over the defaults, then validate."""
        merged: dict[str, Any] = {}
        for layer in layers:
            if not isinstance(layer, Mapping):
                raise StrategyParamError(strategy, symbol, "<params>", f"must be a mapping, got {layer!r}")
            merged.update(layer)
        return cls.from_mapping(merged, strategy=strategy, symbol=symbol)

    def to_dict(self) -> dict[str, Any]:
        """Return the values as plain JSON types (enums as their value)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value
