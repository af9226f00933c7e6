"""RiskLimits: the frozen limits the RiskManager checks, built from YAML `global.risk` and env.

Precedence per field (reference §9.4): code default ← YAML `global.risk.<key>` ← a non-empty
`AI_QUANT_RISK_<KEY>` environment variable. strategies/config.py passes `risk` through as a
read-only mapping; this module owns its schema. Unknown keys, wrong types, non-finite numbers and
out-of-range values raise ConfigError naming the key (or variable): a risk limit the operator
believes is active must never be silently ignored, so reference-only keys that this engine does
not implement (heat, perf_stop, exposure.alts_*) are refused too.

A value of 0 switches a cap off. The four rate limits are always on (minimum 1 per minute).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from engine.config.env import ConfigError, env_bool, env_enum, env_float, env_int
from engine.enums import DrawdownPolicy

_INF = math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """Every limit in its unit; 0 = off for caps and breakers. Windows are 60 s sliding windows."""

    # Rate limits (orders sent in the last 60 s). Entry limits never apply to exits or cancels.
    max_entry_orders_per_min: int = 30
    max_entry_orders_per_min_per_symbol: int = 6
    max_exit_orders_per_min: int = 120
    max_cancels_per_min: int = 120
    # Circuit breakers: a breach denies entries and moves the trading state to REDUCING.
    max_drawdown_pct: float = 0.0  # from the UTC-day peak of account equity; inclusive boundary
    drawdown_reduce_policy: DrawdownPolicy = DrawdownPolicy.NONE  # close_all: flatten on a breach
    max_daily_loss_usd: float = 0.0  # realised PnL minus fees of exits, per UTC day of the fill
    slippage_guard_enabled: bool = False
    slippage_guard_window_fills: int = 20  # entry fills in the median window
    slippage_guard_max_median_bps: float = 0.0  # breach when the full window's median is above
    # Exposure caps for entries (USD notional = coins x price).
    max_open_positions: int = 0
    max_order_notional_usd: float = 0.0
    max_symbol_notional_usd: float = 0.0
    max_gross_notional_usd: float = 0.0
    max_leverage: float = 0.0  # the intent's own leverage
    max_gross_leverage: float = 0.0  # (gross notional incl. this order) / equity
    # Per perp dex (HIP-3 builder dexes and the original) and per collateral token: gross notional
    # of the positions on each dex / settled in each token, including this order.
    max_dex_notional_usd: float = 0.0
    max_collateral_notional_usd: float = 0.0

    @classmethod
    def from_sources(
        cls, risk: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> RiskLimits:
        """Build limits from the YAML `risk` mapping and the environment (env wins when non-empty).

        Raises ConfigError naming the offending YAML key or variable.
        """
        source_env = os.environ if env is None else env
        flat = _flatten(risk or {})
        values: dict[str, Any] = {}
        for spec in _SPECS:
            value = getattr(_DEFAULTS, spec.field)
            if spec.yaml_key in flat:
                value = _yaml_value(spec, flat.pop(spec.yaml_key))
            values[spec.field] = _env_value(spec, value, source_env)
        if flat:
            unknown = ", ".join(f"risk.{key}" for key in sorted(flat))
            raise ConfigError(f"unknown risk config key(s): {unknown}")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class _Spec:
    field: str
    yaml_key: str  # dotted path under `risk`
    lo: float
    hi: float

    @property
    def env_name(self) -> str:
        return "AI_QUANT_RISK_" + self.yaml_key.replace(".", "_").upper()


_DEFAULTS = RiskLimits()

_SPECS: tuple[_Spec, ...] = (
    _Spec("max_entry_orders_per_min", "max_entry_orders_per_min", 1, 1000),
    _Spec("max_entry_orders_per_min_per_symbol", "max_entry_orders_per_min_per_symbol", 1, 1000),
    _Spec("max_exit_orders_per_min", "max_exit_orders_per_min", 1, 10000),
    _Spec("max_cancels_per_min", "max_cancels_per_min", 1, 10000),
    _Spec("max_drawdown_pct", "max_drawdown_pct", 0, 100),
    _Spec("drawdown_reduce_policy", "drawdown_reduce_policy", 0, 0),
    _Spec("max_daily_loss_usd", "max_daily_loss_usd", 0, _INF),
    _Spec("slippage_guard_enabled", "slippage_guard.enabled", 0, 1),
    _Spec("slippage_guard_window_fills", "slippage_guard.window_fills", 1, 1000),
    _Spec("slippage_guard_max_median_bps", "slippage_guard.max_median_bps", 0, 10000),
    _Spec("max_open_positions", "max_open_positions", 0, 10000),
    _Spec("max_order_notional_usd", "max_order_notional_usd", 0, _INF),
    _Spec("max_symbol_notional_usd", "max_symbol_notional_usd", 0, _INF),
    _Spec("max_gross_notional_usd", "max_gross_notional_usd", 0, _INF),
    _Spec("max_leverage", "max_leverage", 0, 100),
    _Spec("max_gross_leverage", "max_gross_leverage", 0, 100),
    _Spec("max_dex_notional_usd", "max_dex_notional_usd", 0, _INF),
    _Spec("max_collateral_notional_usd", "max_collateral_notional_usd", 0, _INF),
)

assert {spec.field for spec in _SPECS} == {f.name for f in fields(RiskLimits)}

ENV_NAMES: tuple[str, ...] = tuple(spec.env_name for spec in _SPECS)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _kind(spec: _Spec) -> type:
    return type(getattr(_DEFAULTS, spec.field))


def _yaml_value(spec: _Spec, raw: object) -> Any:
    name = f"risk.{spec.yaml_key}"
    kind = _kind(spec)
    if issubclass(kind, StrEnum):
        valid = [member.value for member in kind]  # type: ignore[attr-defined]
        if not isinstance(raw, str) or raw.strip().lower() not in valid:
            raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(valid)}")
        return kind(raw.strip().lower())
    if kind is bool:
        if not isinstance(raw, bool):
            raise ConfigError(f"{name}={raw!r} must be true or false")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(f"{name}={raw!r} must be a number")
    if kind is int and not float(raw).is_integer():
        raise ConfigError(f"{name}={raw!r} must be an integer")
    number = float(raw)
    if not math.isfinite(number):
        raise ConfigError(f"{name}={raw!r} must be finite")
    if not spec.lo <= number <= spec.hi:
        raise ConfigError(f"{name}={raw!r} is outside [{spec.lo}, {spec.hi}]")
    return int(number) if kind is int else number


def _env_value(spec: _Spec, current: Any, env: Mapping[str, str]) -> Any:
    kind = _kind(spec)
    if issubclass(kind, StrEnum):
        return env_enum(spec.env_name, kind, current, env)
    if kind is bool:
        return env_bool(spec.env_name, current, env)
    hi = None if math.isinf(spec.hi) else spec.hi
    if kind is int:
        return env_int(spec.env_name, current, env, lo=int(spec.lo), hi=None if hi is None else int(hi))
    return env_float(spec.env_name, current, env, lo=spec.lo, hi=hi)
