"""Field readers shared by the venue parsers: strict, and every failure names its field.

Each reader takes the object being read, the key and a `_Ctx` (request name plus JSON-path-like
field), and raises `ParseError` naming both on a missing key, a wrong type, NaN or infinity, a
sign the field cannot have or an unknown enum value. The names keep their leading underscore:
they are internal to the parser modules (`engine.venue.{account,market,exchange_parse}`), not an
API for the rest of the engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.venue.errors import ParseError

T = TypeVar("T")
E = TypeVar("E")

_DECIMAL_RE = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Where we are in a body, for error messages: request name and a JSON-path-like field."""

    request: str
    path: str = ""

    def at(self, key: str | int) -> _Ctx:
        if isinstance(key, int):
            return _Ctx(self.request, f"{self.path}[{key}]")
        return _Ctx(self.request, f"{self.path}.{key}" if self.path else key)

    def fail(self, reason: str) -> ParseError:
        return ParseError(self.request, self.path, reason)


def _obj(value: Any, ctx: _Ctx) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, ctx: _Ctx) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.fail(f"expected a list, got {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> Any:
    if key not in obj:
        raise ctx.at(key).fail("missing")
    return obj[key]


def _num_value(value: Any, ctx: _Ctx) -> float:
    if isinstance(value, bool):
        raise ctx.fail("expected a number, got a boolean")
    if isinstance(value, int):
        try:
            out = float(value)
        except OverflowError:
            raise ctx.fail("number out of range") from None
    elif isinstance(value, float):
        out = value
    elif isinstance(value, str):
        if not _DECIMAL_RE.match(value):
            raise ctx.fail(f"not a decimal number: {value[:40]!r}")
        out = float(value)
    else:
        raise ctx.fail(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise ctx.fail(f"not finite: {value!r}"[:80])
    return out


def _num(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, sign: str = "any") -> float:
    """Read a finite number; sign is "any", "nonneg" (>= 0) or "pos" (> 0)."""
    c = ctx.at(key)
    out = _num_value(_get(obj, key, ctx), c)
    if sign == "nonneg" and out < 0:
        raise c.fail(f"negative: {out!r}")
    if sign == "pos" and out <= 0:
        raise c.fail(f"not positive: {out!r}")
    return out


def _opt_num(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, sign: str = "any") -> float | None:
    if obj.get(key) is None:
        return None
    return _num(obj, key, ctx, sign=sign)


def _int_value(value: Any, ctx: _Ctx) -> int:
    if isinstance(value, bool):
        raise ctx.fail("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ctx.fail(f"expected an integer, got {value!r}"[:80])


def _int(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, nonneg: bool = True) -> int:
    c = ctx.at(key)
    out = _int_value(_get(obj, key, ctx), c)
    if nonneg and out < 0:
        raise c.fail(f"negative: {out}")
    return out


def _opt_int(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, ctx)


def _str(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, nonempty: bool = True) -> str:
    value = _get(obj, key, ctx)
    if not isinstance(value, str):
        raise ctx.at(key).fail(f"expected a string, got {type(value).__name__}")
    if nonempty and not value:
        raise ctx.at(key).fail("empty string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> str | None:
    return None if obj.get(key) is None else _str(obj, key, ctx, nonempty=False)


def _bool(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> bool:
    value = _get(obj, key, ctx)
    if not isinstance(value, bool):
        raise ctx.at(key).fail(f"expected a boolean, got {type(value).__name__}")
    return value


def _opt_bool(obj: Mapping[str, Any], key: str, ctx: _Ctx, default: bool | None) -> bool | None:
    return default if obj.get(key) is None else _bool(obj, key, ctx)


def _unknown(ctx: _Ctx, value: str) -> ParseError:
    """The error for a string outside the field's known set (the value cut to 40 characters)."""
    return ctx.fail(f"unknown value {value[:40]!r}")


def _enum(enum: Callable[[str], E], obj: Mapping[str, Any], key: str, ctx: _Ctx) -> E:
    value = _str(obj, key, ctx)
    try:
        return enum(value)
    except ValueError:
        raise _unknown(ctx.at(key), value) from None


def _opt_cloid(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> str | None:
    value = _opt_str(obj, key, ctx)
    if value is None:
        return None
    if not _CLOID_RE.match(value):
        raise ctx.at(key).fail(f"not a 16-byte hex cloid: {value[:40]!r}")
    return value.lower()


def _items(body: Any, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]) -> tuple[T, ...]:
    return tuple(parse(item, ctx.at(i)) for i, item in enumerate(_list(body, ctx)))


def _field(obj: Mapping[str, Any], key: str, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]) -> T:
    """Parse the required value at `key` with `parse`, in the context of that key."""
    return parse(_get(obj, key, ctx), ctx.at(key))


def _opt_field(obj: Mapping[str, Any], key: str, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]) -> T | None:
    """Parse the value at `key` with `parse`; None when the key is missing or null."""
    return None if obj.get(key) is None else parse(obj[key], ctx.at(key))


def _sub(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> tuple[Mapping[str, Any], _Ctx]:
    """Return the required nested object at `key` and its context (for reading its fields)."""
    sub_ctx = ctx.at(key)
    return _field(obj, key, ctx, _obj), sub_ctx


def _list_field(
    obj: Mapping[str, Any], key: str, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]
) -> tuple[T, ...]:
    """Parse the required list at `key` item by item."""
    return _items(_get(obj, key, ctx), ctx.at(key), parse)


def _opt_list_field(
    obj: Mapping[str, Any], key: str, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]
) -> tuple[T, ...]:
    """Parse the list at `key` item by item; () when the key is missing or null."""
    return _opt_field(obj, key, ctx, lambda value, c: _items(value, c, parse)) or ()


def _pair(value: Any, ctx: _Ctx, what: str, unit: str = "items") -> list[Any]:
    """Read a two-element list (e.g. `[meta, ctxs]`); `what` names the expected shape in errors."""
    pair = _list(value, ctx)
    if len(pair) != 2:
        raise ctx.fail(f"expected {what}, got {len(pair)} {unit}")
    return pair
