"""The one place `AI_QUANT_*` environment variables are parsed.

Every component builds its frozen settings object from these helpers, so a malformed value
fails at start-up with a ConfigError naming the variable and the value, never mid-trade.
Defaults live next to the field that uses them (in each settings dataclass), not here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is invalid; the process must stop at start-up and say which."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value if value else None


def env_str(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """Return the variable's stripped value, or `default` when unset or empty."""
    value = _raw(os.environ if env is None else env, name)
    return default if value is None else value


def env_opt_str(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Return the variable's stripped value, or None when unset or empty."""
    return _raw(os.environ if env is None else env, name)


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """Parse 1/0, true/false, yes/no, on/off (any case); raise ConfigError otherwise."""
    value = _raw(os.environ if env is None else env, name)
    if value is None:
        return default
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _number(
    name: str,
    default: float,
    parse: Callable[[str], float],
    kind: str,
    env: Mapping[str, str] | None,
    lo: float | None,
    hi: float | None,
) -> float:
    value = _raw(os.environ if env is None else env, name)
    if value is None:
        return default
    try:
        number = parse(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not {kind}") from exc
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{name}={value!r} is not a finite number")
    if lo is not None and number < lo:
        raise ConfigError(f"{name}={value!r} is below the minimum {lo}")
    if hi is not None and number > hi:
        raise ConfigError(f"{name}={value!r} is above the maximum {hi}")
    return number


def env_int(
    name: str,
    default: int,
    env: Mapping[str, str] | None = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> int:
    """Parse an integer within [lo, hi]; raise ConfigError naming the variable otherwise."""
    return int(_number(name, default, int, "an integer", env, lo, hi))


def env_float(
    name: str,
    default: float,
    env: Mapping[str, str] | None = None,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    """Parse a finite float within [lo, hi]; raise ConfigError naming the variable otherwise."""
    return float(_number(name, default, float, "a number", env, lo, hi))


def env_enum(name: str, enum: type[E], default: E, env: Mapping[str, str] | None = None) -> E:
    """Parse a value of a StrEnum (case-insensitive); the error lists the valid values."""
    value = _raw(os.environ if env is None else env, name)
    if value is None:
        return default
    try:
        return enum(value.lower())
    except ValueError as exc:
        valid = ", ".join(member.value for member in enum)
        raise ConfigError(f"{name}={value!r} is not valid; expected one of: {valid}") from exc


def env_list(name: str, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Split a comma-separated variable into stripped, non-empty items (empty tuple when unset)."""
    value = _raw(os.environ if env is None else env, name)
    if value is None:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())
