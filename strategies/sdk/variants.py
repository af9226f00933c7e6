"""Shadow variants: a strategy plus parameter overrides, and grids expanded from YAML ranges.

A variant is a named (strategy, overrides) pair that a shard evaluates beside the primary with its
own paper book (issue 11, "live shadow fleet"). A grid is written in the YAML as, per parameter,
either a list of values or an inclusive range:

    grid:
      channel_bars: [10, 20, 55]
      stop_loss_atr: {from: 1.0, to: 3.0, step: 0.5}

`expand_grid` returns the cartesian product in a deterministic order (parameters sorted by name,
values in the order written), each variant named `base[param=value,...]`; `build_variants` checks
every variant against the strategy's parameter schema, so a bad grid fails at load (exit 2)
naming the variant and the field. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strategies.sdk.errors import StrategyConfigError, StrategyParamError
from strategies.sdk.params import StrategyParams

MAX_VARIANTS_DEFAULT = 1000  # a grid larger than this is almost certainly a typo in a range
_RANGE_KEYS = frozenset({"from", "to", "step"})


@dataclass(frozen=True, slots=True)
class Variant:
    """One shadow variant: its unique name, the strategy reference and its parameter overrides."""

    name: str
    strategy: str
    overrides: Mapping[str, Any]


def _range_values(param: str, spec: Mapping[str, Any]) -> list[float | int]:
    """Inclusive `from..to` by `step`; ints stay ints when all three are ints."""
    if set(spec) != _RANGE_KEYS:
        raise StrategyConfigError(f"grid {param!r}: a range needs exactly from, to, step; got {sorted(spec)}")
    start, stop, step = spec["from"], spec["to"], spec["step"]
    numbers = (start, stop, step)
    if any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) for x in numbers):
        raise StrategyConfigError(f"grid {param!r}: from, to, step must be finite numbers, got {dict(spec)}")
    if step <= 0 or stop < start:
        raise StrategyConfigError(f"grid {param!r}: need step > 0 and to >= from, got {dict(spec)}")
    count = math.floor((stop - start) / step + 1e-9) + 1  # tolerate binary noise at the top end
    if all(isinstance(x, int) for x in numbers):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


def _axis(param: str, values: Any) -> list[Any]:
    if isinstance(values, Mapping):
        return _range_values(param, values)
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise StrategyConfigError(f"grid {param!r}: expected a non-empty list or a from/to/step range")
    return list(values)


def _label(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def expand_grid(base_name: str, strategy: str, grid: Mapping[str, Any], *,
                base_overrides: Mapping[str, Any] | None = None,
                max_variants: int = MAX_VARIANTS_DEFAULT) -> list[Variant]:
    """Return one Variant per combination of the grid's values (see the module docstring).

    `base_overrides` apply to every variant (the grid wins on a shared key). Raises
    StrategyConfigError on a malformed axis or more than `max_variants` combinations.
    """
    params = sorted(grid)
    axes = [_axis(p, grid[p]) for p in params]
    total = math.prod(len(a) for a in axes)
    if total > max_variants:
        raise StrategyConfigError(
            f"grid of {base_name!r} expands to {total} variants, more than the limit {max_variants}")
    base = dict(base_overrides or {})
    out = []
    for combo in itertools.product(*axes):
        label = ",".join(f"{p}={_label(v)}" for p, v in zip(params, combo, strict=True))
        out.append(Variant(f"{base_name}[{label}]" if params else base_name, strategy,
                           {**base, **dict(zip(params, combo, strict=True))}))
    return out


def build_variants(variants: Sequence[Variant], params_cls: type[StrategyParams],
                   layers: Sequence[Mapping[str, Any]] = (), *,
                   symbol: str | None = None) -> list[tuple[Variant, StrategyParams]]:
    """Validate every variant's overrides over `layers`; return (variant, params) pairs.

    Raises StrategyConfigError on a duplicate variant name and StrategyParamError naming the
    variant (as the strategy), the symbol and the field on a bad value.
    """
    seen: set[str] = set()
    out = []
    for variant in variants:
        if variant.name in seen:
            raise StrategyConfigError(f"duplicate shadow variant name {variant.name!r}")
        seen.add(variant.name)
        try:
            params = params_cls.from_layers([*layers, variant.overrides], strategy=variant.strategy,
                                            symbol=symbol)
        except StrategyParamError as e:
            raise StrategyParamError(f"{variant.strategy} (variant {variant.name})", symbol, e.field,
                                     e.problem) from None
        out.append((variant, params))
    return out
