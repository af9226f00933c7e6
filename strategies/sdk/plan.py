"""The `strategies:` block of the strategy YAML: which strategy trades each symbol, which shadows run.

    strategies:
      primary: donchian_breakout            # default mei_alpha_v1 (a YAML without the block is unchanged)
      params:                               # flat SDK parameters per strategy ref, every symbol
        donchian_breakout: {channel_bars: 30}
      symbols:
        ETH:
          primary: rsi_bollinger_reversion  # this symbol's primary (trades)
          params: {rsi_bollinger_reversion: {rsi_oversold: 25}}
      shadows:                              # evaluated beside the primary, never send an order
        - {name: dc_fast, strategy: donchian_breakout, params: {channel_bars: 10}}
        - {name: dc, strategy: donchian_breakout, grid: {channel_bars: [10, 20]}, symbols: [BTC, ETH]}

A strategy ref is a registered name (`python -m strategies list`) or 'package.module:ClassName'.
Parameter layers per (symbol, strategy): `[params[ref], symbols[SYM].params[ref], variant
overrides]` over the strategy's defaults. mei_alpha_v1 takes no flat parameters: it is configured
by the nested sections (trade, indicators, ...) and built from the symbol's `StrategyConfig`.

`parse_plan` checks the block's shape; `StrategyPlan.validate` resolves every ref and builds every
(symbol, strategy) the file names, so an unknown name, an import error or a bad parameter is a
`strategies.config_convert.StrategyConfigError` (exit 2 at start, "keep the last good config" on a
hot reload) naming the YAML path, the strategy, the symbol and the field.

Who reads the plan: the shards build each symbol's primary and shadows (`build_primary`,
`build_shadow`, `shadows_for`); the engine reads exits without indicator rows: `primary_rules(symbol)`
for an SDK primary and `rules_for(variant)` for a shadow variant's paper book. Importing a user
module is the only side effect (the registry's).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strategies.config_convert import StrategyConfigError, _check_keys, _join, _mapping
from strategies.sdk.errors import StrategyConfigError as SdkConfigError
from strategies.sdk.strategy import ExitRules, Strategy
from strategies.sdk.variants import Variant, expand_grid

if TYPE_CHECKING:
    from strategies.config import StrategyConfig
    from strategies.sdk.registry import StrategyRegistry

MEI = "mei_alpha_v1"
_BLOCK_KEYS = ("primary", "params", "symbols", "shadows")
_SYMBOL_KEYS = ("primary", "params")
_SHADOW_KEYS = ("name", "strategy", "params", "grid", "symbols")


@functools.cache
def installed_registry() -> StrategyRegistry:
    """The built-ins plus installed entry points, built once per process (module paths load on demand)."""
    from strategies.sdk.registry import StrategyRegistry

    return StrategyRegistry.installed()


@dataclass(frozen=True, slots=True)
class SymbolPlan:
    """One symbol's choices: its primary (None = the global one) and its parameter layer per ref."""

    primary: str | None = None
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    """One shadow variant and the symbols it runs on (None = every symbol)."""

    variant: Variant
    symbols: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.variant.name

    def runs_on(self, symbol: str) -> bool:
        return self.symbols is None or symbol.upper() in self.symbols


@dataclass(frozen=True, slots=True)
class StrategyPlan:
    """The parsed `strategies:` block (see the module docstring); picklable, shipped to the shards."""

    primary: str = MEI
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    symbols: Mapping[str, SymbolPlan] = field(default_factory=dict)
    shadows: tuple[ShadowSpec, ...] = ()

    @property
    def is_default(self) -> bool:
        """True when every symbol trades mei_alpha_v1 and no shadow runs (the legacy fast path)."""
        return self.primary == MEI and not self.shadows and all(
            s.primary in (None, MEI) for s in self.symbols.values())

    def primary_ref(self, symbol: str | None) -> str:
        """The strategy ref that trades `symbol` (None = the global view)."""
        own = self.symbols.get(symbol.upper()) if symbol else None
        return own.primary if own is not None and own.primary is not None else self.primary

    def sdk_primary(self, symbol: str | None) -> bool:
        """True when `symbol`'s primary is not mei_alpha_v1 (it trades through the SDK path)."""
        return self.primary_ref(symbol) != MEI

    def layers(self, ref: str, symbol: str | None) -> list[Mapping[str, Any]]:
        """Parameter layers of `ref` on `symbol`: global params, then the symbol's own."""
        out = [self.params[ref]] if ref in self.params else []
        own = self.symbols.get(symbol.upper()) if symbol else None
        if own is not None and ref in own.params:
            out.append(own.params[ref])
        return out

    def shadows_for(self, symbol: str) -> tuple[ShadowSpec, ...]:
        """The shadow variants configured for `symbol`, in YAML order (grids expanded)."""
        return tuple(s for s in self.shadows if s.runs_on(symbol))

    def shadow(self, name: str) -> ShadowSpec:
        """The shadow variant called `name`; raises KeyError naming it."""
        for spec in self.shadows:
            if spec.name == name:
                return spec
        raise KeyError(f"no shadow variant {name!r}")

    def build(self, ref: str, symbol: str | None, *, overrides: Mapping[str, Any] | None = None,
              cfg: StrategyConfig | None = None) -> Strategy[Any]:
        """Build `ref` for `symbol` with its layers (+ variant overrides); raises the SDK's config errors.

        mei_alpha_v1 is built from `cfg` (the symbol's resolved config; code defaults if None).
        """
        if ref == MEI:
            from strategies.sdk.builtin.mei import MeiAlphaV1

            flat = [*self.layers(ref, symbol), overrides or {}]
            MeiAlphaV1.PARAMS.from_layers(flat, strategy=ref, symbol=symbol)  # refuses any flat param
            return MeiAlphaV1.from_config(cfg) if cfg is not None else MeiAlphaV1.configure(symbol=symbol)
        layers = [*self.layers(ref, symbol), *([overrides] if overrides else [])]
        return installed_registry().configure(ref, layers, symbol=symbol)

    def build_primary(self, symbol: str, cfg: StrategyConfig | None = None) -> Strategy[Any] | None:
        """The SDK strategy that trades `symbol`; None when mei_alpha_v1 does (the legacy fast path)."""
        ref = self.primary_ref(symbol)
        return None if ref == MEI else self.build(ref, symbol, cfg=cfg)

    def build_shadow(self, spec: ShadowSpec, symbol: str | None,
                     cfg: StrategyConfig | None = None) -> Strategy[Any]:
        """The strategy object of one shadow variant on `symbol`."""
        return self.build(spec.variant.strategy, symbol, overrides=spec.variant.overrides, cfg=cfg)

    def primary_rules(self, symbol: str, cfg: StrategyConfig | None = None) -> ExitRules | None:
        """The exit rules of `symbol`'s SDK primary; None when mei_alpha_v1 trades it."""
        strategy = self.build_primary(symbol, cfg)
        return None if strategy is None else strategy.rules

    def rules_for(self, variant: str, symbol: str | None = None,
                  cfg: StrategyConfig | None = None) -> ExitRules:
        """The exit rules (stop, take-profit, trailing in entry-ATR multiples) of shadow `variant`."""
        return self.build_shadow(self.shadow(variant), symbol, cfg).rules

    def validate(self, symbols: Iterable[str] = ()) -> None:
        """Build every primary and shadow for the global view, `symbols` and the symbols the block names.

        Raises `strategies.config_convert.StrategyConfigError` naming the YAML path and the reason.
        """
        seen: set[str] = set()
        for spec in self.shadows:
            if spec.name in seen:
                raise StrategyConfigError(f"strategies.shadows: duplicate variant name {spec.name!r}")
            seen.add(spec.name)
        named = {None, *self.symbols, *(s.upper() for s in symbols)}
        for spec in self.shadows:
            named.update(spec.symbols or ())
        for symbol in sorted(named, key=lambda s: s or ""):
            where = "strategies.primary" if symbol is None or symbol not in self.symbols else _join(
                "strategies.symbols", symbol)
            _as_config_error(where, lambda s=symbol: self.build(self.primary_ref(s), s))
        for spec in self.shadows:
            for symbol in spec.symbols or (None,):
                _as_config_error(f"strategies.shadows[{spec.name}]",
                                 lambda s=symbol, v=spec: self.build_shadow(v, s))


def _as_config_error(where: str, build: Any) -> None:
    try:
        build()
    except SdkConfigError as e:
        raise StrategyConfigError(f"{where}: {e}") from None


def _ref(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StrategyConfigError(f"{path}: expected a strategy name or 'package.module:Class', "
                                  f"got {value!r}")
    return value.strip()


def _params_block(value: Any, path: str) -> dict[str, dict[str, Any]]:
    out = {}
    for ref, layer in _mapping(value, path).items():
        out[_ref(ref, path)] = dict(_mapping(layer, _join(path, str(ref))))
    return out


def _symbols_list(value: Any, path: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise StrategyConfigError(f"{path}: expected a non-empty list of symbols, got {value!r}")
    return tuple(str(s).upper() for s in value)


def _shadow(raw: Any, index: int) -> list[ShadowSpec]:
    path = f"strategies.shadows[{index}]"
    raw = _mapping(raw, path)
    _check_keys(raw, _SHADOW_KEYS, path)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise StrategyConfigError(f"{_join(path, 'name')}: expected a non-empty name, got {name!r}")
    ref = _ref(raw.get("strategy"), _join(path, "strategy"))
    params = dict(_mapping(raw.get("params"), _join(path, "params")))
    symbols = _symbols_list(raw.get("symbols"), _join(path, "symbols"))
    if raw.get("grid") is None:
        return [ShadowSpec(Variant(name.strip(), ref, params), symbols)]
    try:
        variants = expand_grid(name.strip(), ref, _mapping(raw["grid"], _join(path, "grid")),
                               base_overrides=params)
    except SdkConfigError as e:
        raise StrategyConfigError(f"{_join(path, 'grid')}: {e}") from None
    return [ShadowSpec(v, symbols) for v in variants]


def parse_plan(block: Any) -> StrategyPlan:
    """Check the shape of the `strategies:` block (None = defaults); refs are resolved by `validate`."""
    if block is None:
        return StrategyPlan()
    block = _mapping(block, "strategies")
    _check_keys(block, _BLOCK_KEYS, "strategies")
    primary = _ref(block["primary"], "strategies.primary") if block.get("primary") is not None else MEI
    symbols = {}
    for sym, raw in _mapping(block.get("symbols"), "strategies.symbols").items():
        path = _join("strategies.symbols", str(sym))
        raw = _mapping(raw, path)
        _check_keys(raw, _SYMBOL_KEYS, path)
        own = _ref(raw["primary"], _join(path, "primary")) if raw.get("primary") is not None else None
        symbols[str(sym).upper()] = SymbolPlan(own, _params_block(raw.get("params"), _join(path, "params")))
    shadows_raw = block.get("shadows") or []
    if not isinstance(shadows_raw, list):
        raise StrategyConfigError(f"strategies.shadows: expected a list, got {shadows_raw!r}")
    shadows = tuple(spec for i, raw in enumerate(shadows_raw) for spec in _shadow(raw, i))
    return StrategyPlan(primary, _params_block(block.get("params"), "strategies.params"), symbols, shadows)

