"""Typed strategy configuration: the schema, its code defaults, the strict loader and the merge.

This module owns the `config/strategy_overrides.yaml` schema (reference §1.10 / engine §5).
Every default is written once, on its dataclass field. The loader takes plain dicts (what
`yaml.safe_load` returns), rejects unknown keys and wrong types naming the full key path, and
merges the layers in the documented order:

    code defaults <- global <- symbols.<SYM> <- live (live/dry_live only) <- modes.<mode>

`live` and `modes.<mode>` accept `{global: ..., symbols: ...}` or the shorthand `{trade: ...}`
(applied as global). Mode aliases follow the reference (m1/mode1 -> primary, halt/pause -> flat).
The `flat` mode means "no new entries"; `StrategyConfig.entries_enabled` is False and the signal
function returns NEUTRAL. Pure: no file or env access (the caller passes `live=` and the mode).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from strategies.config_convert import (
    FrozenMap,
    StrategyConfigError,
    _build,
    _check_keys,
    _join,
    _mapping,
)
from strategies.enums import Confidence, MacdMode, StrategyMode
from strategies.indicator_params import IndicatorParams
from strategies.sdk.plan import StrategyPlan, parse_plan

__all__ = [
    "INERT_TRADE_KEYS",
    "MODE_ALIASES",
    "AnomalyThresholds",
    "EngineConfig",
    "EntryThresholds",
    "FiltersConfig",
    "FrozenMap",
    "IndicatorsConfig",
    "LiveDefaults",
    "MarketRegimeConfig",
    "RangingThresholds",
    "StochRsiThresholds",
    "StrategyConfig",
    "StrategyConfigError",
    "StrategyOverrides",
    "Thresholds",
    "TpMomentumThresholds",
    "TradeConfig",
    "config_to_dict",
    "deep_merge",
    "default_config",
    "load_yaml_text",
    "parse_overrides",
    "parse_strategy_mode",
]


# ----------------------------------------------------------------------------------------------
# Sections. Field defaults are the reference's code defaults (not the example YAML's values).
# ----------------------------------------------------------------------------------------------

_KW = {"frozen": True, "kw_only": True, "slots": True}


@dataclass(**_KW)
class TradeConfig:
    """`trade`: sizing, leverage, exits, execution-time gates. Prices in ATR units unless named."""

    allocation_pct: float = 0.03  # fraction of equity used as margin per entry
    sl_atr_mult: float = 2.0
    tp_atr_mult: float = 4.0
    leverage: float = 3.0
    enable_dynamic_leverage: bool = True
    leverage_low: float = 1.0
    leverage_medium: float = 3.0
    leverage_high: float = 5.0
    leverage_max_cap: float = 0.0  # 0 = no cap
    min_notional_usd: float = 10.0
    bump_to_min_notional: bool = False
    max_total_margin_pct: float = 0.60
    max_open_positions: int = 20
    entry_min_confidence: Confidence = Confidence.HIGH
    enable_dynamic_sizing: bool = True
    confidence_mult_high: float = 1.0
    confidence_mult_medium: float = 0.7
    confidence_mult_low: float = 0.5
    adx_sizing_min_mult: float = 0.6
    adx_sizing_full_adx: float = 40.0
    vol_baseline_pct: float = 0.01
    vol_scalar_min: float = 0.5
    vol_scalar_max: float = 1.0
    enable_pyramiding: bool = True
    max_adds_per_symbol: int = 2
    add_fraction_of_base_margin: float = 0.5
    add_cooldown_minutes: float = 60.0
    add_min_profit_atr: float = 0.5
    add_min_confidence: Confidence = Confidence.MEDIUM
    enable_partial_tp: bool = True
    tp_partial_pct: float = 0.5
    tp_partial_min_notional_usd: float = 10.0
    tp_partial_atr_mult: float = 0.0  # 0 = partial at the full TP level
    trailing_start_atr: float = 1.0
    trailing_distance_atr: float = 0.8
    enable_breakeven_stop: bool = True
    breakeven_start_atr: float = 0.7
    breakeven_buffer_atr: float = 0.05
    enable_ssf_filter: bool = True
    enable_reef_filter: bool = True
    reef_long_rsi_block_gt: float = 70.0
    reef_short_rsi_block_lt: float = 30.0
    reentry_cooldown_minutes: float = 60.0  # > 0 enables the PESC re-entry cooldown
    reentry_cooldown_min_mins: float = 45.0
    reentry_cooldown_max_mins: float = 180.0
    slippage_bps: float = 10.0
    use_bbo_for_fills: bool = True
    # knobs
    enable_vol_buffered_trailing: bool = True
    enable_rsi_overextension_exit: bool = True
    rsi_exit_profit_atr_switch: float = 1.5
    rsi_exit_ub_lo_profit: float = 80.0
    rsi_exit_ub_hi_profit: float = 70.0
    rsi_exit_lb_lo_profit: float = 20.0
    rsi_exit_lb_hi_profit: float = 30.0
    rsi_exit_ub_lo_profit_low_conf: float = 0.0
    rsi_exit_ub_hi_profit_low_conf: float = 0.0
    rsi_exit_lb_lo_profit_low_conf: float = 0.0
    rsi_exit_lb_hi_profit_low_conf: float = 0.0
    tsme_min_profit_atr: float = 1.0
    tsme_require_adx_slope_negative: bool = True
    smart_exit_adx_exhaustion_lt: float = 18.0
    smart_exit_adx_exhaustion_lt_low_conf: float = 0.0
    trailing_start_atr_low_conf: float = 0.0
    trailing_distance_atr_low_conf: float = 0.0
    reef_adx_threshold: float = 45.0
    reef_long_rsi_extreme_gt: float = 75.0
    reef_short_rsi_extreme_lt: float = 25.0
    min_atr_pct: float = 0.003  # Rust-only ATR floor: only the default is accepted (INERT_TRADE_KEYS)
    reverse_entry_signal: bool = False
    block_exits_on_extreme_dev: bool = False
    glitch_price_dev_pct: float = 0.40
    glitch_atr_mult: float = 12.0
    entry_cooldown_s: float = 20.0
    exit_cooldown_s: float = 15.0
    max_entry_orders_per_loop: int = 6
    # optional
    size_multiplier: float = 1.0
    min_margin_usd: float | None = None
    max_notional_usd_per_order: float | None = None


_TRADE_DEFAULTS = TradeConfig()
_WINDOWS = IndicatorParams()  # the window defaults are written once, on IndicatorParams


@dataclass(**_KW)
class IndicatorsConfig:
    """`indicators`: indicator windows in bars. MACD is fixed 12/26/9 (not configurable)."""

    ema_slow_window: int = _WINDOWS.ema_slow_window
    ema_fast_window: int = _WINDOWS.ema_fast_window
    ema_macro_window: int = _WINDOWS.ema_macro_window
    adx_window: int = _WINDOWS.adx_window
    bb_window: int = _WINDOWS.bb_window
    bb_width_avg_window: int = _WINDOWS.bb_width_avg_window
    atr_window: int = _WINDOWS.atr_window
    rsi_window: int = _WINDOWS.rsi_window
    vol_sma_window: int = _WINDOWS.vol_sma_window
    vol_trend_window: int = _WINDOWS.vol_trend_window
    stoch_rsi_window: int = _WINDOWS.stoch_rsi_window
    stoch_rsi_smooth1: int = _WINDOWS.stoch_rsi_smooth1
    stoch_rsi_smooth2: int = _WINDOWS.stoch_rsi_smooth2
    ave_avg_atr_window: int | None = None  # when set, copied into thresholds.entry


@dataclass(**_KW)
class FiltersConfig:
    enable_ranging_filter: bool = True
    enable_anomaly_filter: bool = True
    enable_extension_filter: bool = True
    require_adx_rising: bool = True
    adx_rising_saturation: float = 40.0
    require_volume_confirmation: bool = False
    vol_confirm_include_prev: bool = True
    use_stoch_rsi_filter: bool = True
    require_btc_alignment: bool = True
    require_macro_alignment: bool = False
    block_exits_on_anomaly: bool = False


@dataclass(**_KW)
class EntryThresholds:
    min_adx: float = 22.0
    high_conf_volume_mult: float = 2.5
    btc_adx_override: float = 40.0
    max_dist_ema_fast: float = 0.04
    ave_enabled: bool = True
    ave_atr_ratio_gt: float = 1.5
    ave_adx_mult: float = 1.25
    ave_avg_atr_window: int = 50  # bars, clamped to 5..500 for the avg_atr indicator
    macd_hist_entry_mode: MacdMode = MacdMode.ACCEL
    enable_pullback_entries: bool = False
    pullback_confidence: Confidence = Confidence.LOW
    pullback_min_adx: float | None = None  # None: same as min_adx (reference default)
    pullback_rsi_long_min: float = 50.0
    pullback_rsi_short_max: float = 50.0
    pullback_require_macd_sign: bool = True
    enable_slow_drift_entries: bool = False
    slow_drift_slope_window: int = 20
    slow_drift_min_slope_pct: float = 0.0006
    slow_drift_min_adx: float = 10.0
    slow_drift_rsi_long_min: float = 50.0
    slow_drift_rsi_short_max: float = 50.0
    slow_drift_require_macd_sign: bool = True


@dataclass(**_KW)
class RangingThresholds:
    min_signals: int = 2
    adx_below: float = 21.0
    bb_width_ratio_below: float = 0.8
    rsi_low: float = 47.0
    rsi_high: float = 53.0


@dataclass(**_KW)
class AnomalyThresholds:
    price_change_pct_gt: float = 0.10
    ema_fast_dev_pct_gt: float = 0.50


@dataclass(**_KW)
class TpMomentumThresholds:
    adx_strong_gt: float = 40.0
    adx_weak_lt: float = 30.0
    tp_mult_strong: float = 7.0
    tp_mult_weak: float = 3.0
    rsi_long_strong: float = 52.0
    rsi_long_weak: float = 56.0
    rsi_short_strong: float = 48.0
    rsi_short_weak: float = 44.0


@dataclass(**_KW)
class StochRsiThresholds:
    block_long_if_k_gt: float = 0.85
    block_short_if_k_lt: float = 0.15


@dataclass(**_KW)
class Thresholds:
    entry: EntryThresholds = field(default_factory=EntryThresholds)
    ranging: RangingThresholds = field(default_factory=RangingThresholds)
    anomaly: AnomalyThresholds = field(default_factory=AnomalyThresholds)
    tp_and_momentum: TpMomentumThresholds = field(default_factory=TpMomentumThresholds)
    stoch_rsi: StochRsiThresholds = field(default_factory=StochRsiThresholds)


@dataclass(**_KW)
class MarketRegimeConfig:
    """`global.market_regime`: market-wide entry gates, applied by `engine.tick.regime`.

    Breadth = % of the watchlist whose EMA_fast > EMA_slow (last evaluated candle). Each switch
    enables what its name says (the reference let `enable_regime_filter` shadow the gate keys):
    - `enable_regime_filter`: breadth filter; blocks SELL entries above `breadth_block_short_above`
      and BUY entries below `breadth_block_long_below`;
    - `enable_regime_gate`: blocks every OPEN/ADD while breadth is inside
      [`regime_gate_breadth_low`, `regime_gate_breadth_high`] (chop) or BTC's ADX or ATR/price is
      below its minimum;
    - `enable_auto_reverse`: swaps BUY and SELL while breadth is inside
      [`auto_reverse_breadth_low`, `auto_reverse_breadth_high`];
    - `regime_gate_fail_open`: what the filter and gate do when breadth or BTC metrics are missing
      (False: block entries). Exits are never gated.
    """

    enable_regime_filter: bool = False
    breadth_block_short_above: float = 90.0
    breadth_block_long_below: float = 10.0
    enable_auto_reverse: bool = False
    auto_reverse_breadth_low: float = 10.0
    auto_reverse_breadth_high: float = 90.0
    enable_regime_gate: bool = False
    regime_gate_breadth_low: float = 20.0
    regime_gate_breadth_high: float = 80.0
    regime_gate_btc_adx_min: float = 20.0
    regime_gate_btc_atr_pct_min: float = 0.003
    regime_gate_fail_open: bool = False


@dataclass(**_KW)
class EngineConfig:
    """`global.engine`. None = not set in YAML: the engine falls back to its env/default.

    Applied at start by `engine.tick.engine_knobs` (a change needs a restart). `entry_interval`
    must equal the main interval and `exit_interval` must be `mid` (what the engine does);
    anything else is refused at start rather than ignored.
    """

    interval: str | None = None  # not hot-reloadable
    entry_interval: str | None = None
    exit_interval: str | None = None
    loop_target_s: float | None = None
    signal_on_candle_close: bool | None = None
    heartbeat_every_s: float | None = None
    candle_close_grace_ms: int | None = None


@dataclass(**_KW)
class LiveDefaults:
    """Values filled in for live/dry_live when the merged YAML leaves them unset (env-overridable
    by the engine: AI_QUANT_LIVE_MAX_OPEN_POSITIONS, _MAX_NOTIONAL_USD_PER_ORDER, _MIN_MARGIN_USD)."""

    max_open_positions: int = 1
    max_notional_usd_per_order: float = 15.0
    min_margin_usd: float = 6.0


@dataclass(**_KW)
class StrategyConfig:
    """The merged, validated configuration for one symbol (or the global view, symbol=None).

    `risk` is passed through as a read-only mapping: its schema belongs to the risk module.
    """

    trade: TradeConfig = field(default_factory=TradeConfig)
    indicators: IndicatorsConfig = field(default_factory=IndicatorsConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    thresholds: Thresholds = field(default_factory=Thresholds)
    market_regime: MarketRegimeConfig = field(default_factory=MarketRegimeConfig)
    watchlist_exclude: tuple[str, ...] = ()
    engine: EngineConfig = field(default_factory=EngineConfig)
    risk: Mapping[str, Any] = field(default_factory=FrozenMap)
    symbol: str | None = None
    strategy_mode: StrategyMode | None = None

    @property
    def entries_enabled(self) -> bool:
        """False in the `flat` strategy mode: no new entries (exits keep working)."""
        return self.strategy_mode is not StrategyMode.FLAT

    def indicator_params(self) -> IndicatorParams:
        """Return the indicator windows (`IndicatorParams`) this config describes."""
        ind, entry = self.indicators, self.thresholds.entry
        return IndicatorParams(
            ema_fast_window=ind.ema_fast_window,
            ema_slow_window=ind.ema_slow_window,
            ema_macro_window=ind.ema_macro_window,
            adx_window=ind.adx_window,
            bb_window=ind.bb_window,
            bb_width_avg_window=ind.bb_width_avg_window,
            atr_window=ind.atr_window,
            avg_atr_window=min(500, max(5, entry.ave_avg_atr_window)),
            rsi_window=ind.rsi_window,
            vol_sma_window=ind.vol_sma_window,
            vol_trend_window=ind.vol_trend_window,
            stoch_rsi_window=ind.stoch_rsi_window,
            stoch_rsi_smooth1=ind.stoch_rsi_smooth1,
            stoch_rsi_smooth2=ind.stoch_rsi_smooth2,
            slow_drift_slope_window=entry.slow_drift_slope_window,
        )


_SECTION_KEYS = ("trade", "indicators", "filters", "thresholds")
# Read from the global view only (the engine's regime gates and watchlist are market-wide), so a
# symbol layer naming one of these is refused rather than silently ignored.
_GLOBAL_ONLY_KEYS = ("engine", "risk", "market_regime", "watchlist_exclude")


# ----------------------------------------------------------------------------------------------
# Layers, merge and resolution
# ----------------------------------------------------------------------------------------------

MODE_ALIASES: Mapping[str, StrategyMode] = FrozenMap({
    "m1": StrategyMode.PRIMARY, "mode1": StrategyMode.PRIMARY,
    "m2": StrategyMode.FALLBACK, "mode2": StrategyMode.FALLBACK,
    "m3": StrategyMode.CONSERVATIVE, "mode3": StrategyMode.CONSERVATIVE,
    "safe": StrategyMode.CONSERVATIVE, "safety": StrategyMode.CONSERVATIVE,
    "halt": StrategyMode.FLAT, "pause": StrategyMode.FLAT, "paused": StrategyMode.FLAT,
})


def parse_strategy_mode(name: str | None) -> StrategyMode | None:
    """Parse `AI_QUANT_STRATEGY_MODE` (aliases accepted, case-insensitive); '' or None -> None."""
    if name is None or not name.strip():
        return None
    key = name.strip().lower()
    if key in MODE_ALIASES:
        return MODE_ALIASES[key]
    try:
        return StrategyMode(key)
    except ValueError:
        allowed = ", ".join([m.value for m in StrategyMode] + sorted(MODE_ALIASES))
        raise StrategyConfigError(f"unknown strategy mode {name!r}; expected one of {allowed}") from None


INERT_TRADE_KEYS: Mapping[str, str] = FrozenMap({
    "reef_adx_threshold": "the reference records the ADX-tiered REEF thresholds in its audit only",
    "reef_long_rsi_extreme_gt": "the reference records the ADX-tiered REEF thresholds in its audit only",
    "reef_short_rsi_extreme_lt": "the reference records the ADX-tiered REEF thresholds in its audit only",
    "min_atr_pct": "a Rust-kernel ATR floor the Python semantics (and this engine) do not apply",
})
"""`trade` keys in the reference schema that nothing applies: accepted only at their code default
(so ported files still load); any other value is refused rather than silently ignored."""


def _refuse_inert(layer: Mapping[str, Any], path: str) -> None:
    trade = layer.get("trade")
    if not isinstance(trade, Mapping):
        return
    for key, why in INERT_TRADE_KEYS.items():
        default = getattr(_TRADE_DEFAULTS, key)
        if key in trade and trade[key] != default:
            raise StrategyConfigError(
                f"{_join(path, 'trade.' + key)}={trade[key]!r} is not supported ({why}); "
                f"remove it or leave it at {default}"
            )


def _validate_layer(layer: Any, path: str, *, allow_global_only: bool) -> dict[str, Any]:
    """Check one section tree (keys and types) and return it as a plain dict."""
    if layer is None:
        return {}
    layer = _mapping(layer, path)
    if not allow_global_only:
        for key in layer:
            if key in _GLOBAL_ONLY_KEYS:
                raise StrategyConfigError(
                    f"unknown key {_join(path, str(key))} (allowed only at global level: global.{key})"
                )
    _check_keys(layer, _SECTION_KEYS + (_GLOBAL_ONLY_KEYS if allow_global_only else ()), path)
    _build(StrategyConfig, layer, path)  # full type check with paths; result discarded
    _refuse_inert(layer, path)
    return dict(layer)


def _split_scoped(block: Any, path: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Validate a `live` / `modes.<m>` block: `{global, symbols}` or the shorthand sections."""
    block = _mapping(block, path)
    scoped = {"global", "symbols"}
    if block and set(block) <= scoped:
        glob = _validate_layer(block.get("global"), _join(path, "global"), allow_global_only=True)
        return glob, _validate_symbols(block.get("symbols"), _join(path, "symbols"))
    if set(block) & scoped:
        bad = sorted(set(block) - scoped)[0]
        raise StrategyConfigError(f"unknown key {_join(path, bad)} (mixes global/symbols with sections)")
    return _validate_layer(block, path, allow_global_only=True), {}


def _validate_symbols(block: Any, path: str) -> dict[str, dict[str, Any]]:
    return {
        str(sym).upper(): _validate_layer(layer, _join(path, str(sym)), allow_global_only=False)
        for sym, layer in _mapping(block, path).items()
    }


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return base with override merged in: mappings merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(**_KW)
class StrategyOverrides:
    """A validated overrides document (the parsed YAML). `resolve` yields per-symbol configs."""

    global_layer: Mapping[str, Any] = field(default_factory=dict)
    symbols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    live_global: Mapping[str, Any] = field(default_factory=dict)
    live_symbols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    modes: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Mapping[str, Any]]]] = field(
        default_factory=dict
    )
    plan: StrategyPlan = field(default_factory=StrategyPlan)  # the `strategies:` block (strategies.sdk.plan)

    def resolve(
        self,
        symbol: str | None = None,
        *,
        live: bool = False,
        strategy_mode: StrategyMode | str | None = None,
        live_defaults: LiveDefaults | None = None,
    ) -> StrategyConfig:
        """Merge the layers for `symbol` (None = global view) and build the typed config.

        `live` is True when the run mode is live or dry_live. Raises StrategyConfigError.
        """
        sym = symbol.upper() if symbol else None
        mode = (strategy_mode if isinstance(strategy_mode, StrategyMode)
                else parse_strategy_mode(strategy_mode))
        layers = [(self.global_layer, self.symbols)]
        if live:
            layers.append((self.live_global, self.live_symbols))
        if mode is not None:
            layers.append(self._mode_block(mode))
        merged: dict[str, Any] = {}
        for glob, syms in layers:  # each scope: its global part, then the symbol's own
            merged = deep_merge(merged, glob)
            if sym is not None:
                merged = deep_merge(merged, syms.get(sym, {}))
        if live:
            merged = _apply_live_defaults(merged, live_defaults or LiveDefaults())
        ave_window = (merged.get("indicators") or {}).get("ave_avg_atr_window")
        if ave_window is not None:
            merged = deep_merge(merged, {"thresholds": {"entry": {"ave_avg_atr_window": ave_window}}})
        merged["symbol"] = sym
        merged["strategy_mode"] = mode.value if mode is not None else None
        return _build(StrategyConfig, merged, "")

    def _mode_block(self, mode: StrategyMode) -> tuple[Mapping[str, Any], Mapping[str, Mapping[str, Any]]]:
        for key in (mode.value, mode.value.upper(), mode.value.lower()):
            if key in self.modes:
                return self.modes[key]
        for key, block in self.modes.items():  # alias spelled in the YAML (e.g. `halt:`)
            if MODE_ALIASES.get(key.lower()) is mode:
                return block
        return {}, {}


def _apply_live_defaults(merged: dict[str, Any], defaults: LiveDefaults) -> dict[str, Any]:
    trade = dict(merged.get("trade") or {})
    trade.setdefault("max_open_positions", defaults.max_open_positions)
    if trade.get("max_notional_usd_per_order") is None:
        trade["max_notional_usd_per_order"] = defaults.max_notional_usd_per_order
    if trade.get("min_margin_usd") is None:
        trade["min_margin_usd"] = defaults.min_margin_usd
    return {**merged, "trade": trade}


def parse_overrides(doc: Any, source: str = "strategy_overrides.yaml") -> StrategyOverrides:
    """Validate a parsed overrides document; errors read `<source>: unknown key <path>`."""
    try:
        return _parse_overrides(doc)
    except StrategyConfigError as e:
        raise StrategyConfigError(f"{source}: {e}") from None


def _parse_overrides(doc: Any) -> StrategyOverrides:
    if doc is None:
        return StrategyOverrides()
    if not isinstance(doc, Mapping):
        raise StrategyConfigError(f"<root>: expected a mapping, got {type(doc).__name__}")
    _check_keys(doc, ("global", "symbols", "live", "modes", "strategies", "_promoted_meta"), "")
    plan = parse_plan(doc.get("strategies"))
    plan.validate()  # resolves every strategy ref: unknown name / import error / bad parameter -> exit 2
    live_global, live_symbols = _split_scoped(doc.get("live"), "live")
    modes = {}
    for name, block in _mapping(doc.get("modes") or {}, "modes").items():
        parse_strategy_mode(str(name))  # rejects unknown mode names
        modes[str(name)] = _split_scoped(block, _join("modes", str(name)))
    return StrategyOverrides(
        global_layer=_validate_layer(doc.get("global"), "global", allow_global_only=True),
        symbols=_validate_symbols(doc.get("symbols"), "symbols"),
        live_global=live_global,
        live_symbols=live_symbols,
        modes=modes,
        plan=plan,
    )


def load_yaml_text(text: str, source: str = "strategy_overrides.yaml") -> StrategyOverrides:
    """Parse YAML text into validated overrides. Raises StrategyConfigError (syntax or schema)."""
    import yaml  # local: only this entry point needs it

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise StrategyConfigError(f"{source}: YAML syntax error: {e}") from e
    return parse_overrides(doc, source)


def default_config(symbol: str | None = None) -> StrategyConfig:
    """Return the code defaults (no overrides)."""
    return StrategyOverrides().resolve(symbol)


def config_to_dict(cfg: Any) -> Any:
    """Return a plain, JSON-able dict of a config (enums as their values); for snapshots/hashes."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, tuple | list):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, StrEnum):
        return cfg.value
    return cfg
