"""Market-regime gates (YAML `global.market_regime`): breadth, the regime gate and auto-reverse.

Owns the market-wide view the entry gates read: market breadth (the % of the watchlist whose
EMA_fast is above EMA_slow on its last evaluated candle) and BTC's trend strength (ADX, ATR/price).
`RegimeTracker` keeps the last indicator values each shard returned; everything else here is pure.

What each switch does (reference engine §3.9 and the Rust kernel's breadth filter; the
reference's key shadowing, §18.7, is not copied: every key does what its name says):
- `enable_regime_filter`: a SELL entry is blocked while breadth > `breadth_block_short_above`,
  a BUY entry while breadth < `breadth_block_long_below`;
- `enable_regime_gate`: every OPEN/ADD is blocked while breadth is inside
  [`regime_gate_breadth_low`, `regime_gate_breadth_high`] (chop), or BTC's ADX is below
  `regime_gate_btc_adx_min`, or BTC's ATR/price is below `regime_gate_btc_atr_pct_min`;
- `enable_auto_reverse`: BUY and SELL swap while breadth is inside
  [`auto_reverse_breadth_low`, `auto_reverse_breadth_high`] (exits see the swapped signal too);
- missing breadth or BTC metrics: `regime_gate_fail_open` decides (False: entries are blocked).
Exits are never gated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cluster.records import ShardDecision
from strategies.config import MarketRegimeConfig
from strategies.enums import Signal

ANCHOR_SYMBOL = "BTC"


class RegimeReason(StrEnum):
    """Why the regime gate is on or off (recorded in the gate check and the heartbeat)."""

    DISABLED = "disabled"
    TREND_OK = "trend_ok"
    BREADTH_MISSING = "breadth_missing"
    BREADTH_CHOP = "breadth_chop"
    BTC_METRICS_MISSING = "btc_metrics_missing"
    BTC_ADX_LOW = "btc_adx_low"
    BTC_ATR_LOW = "btc_atr_low"


class BreadthReason(StrEnum):
    """Outcome of the directional breadth filter for one entry signal."""

    DISABLED = "disabled"
    OK = "ok"
    BREADTH_MISSING = "breadth_missing"
    LONG_BLOCKED = "breadth_below_long_floor"
    SHORT_BLOCKED = "breadth_above_short_ceiling"


@dataclass(frozen=True, slots=True)
class RegimeInputs:
    """Breadth in percent (0..100) and BTC's ADX and ATR/price; None when unknown."""

    breadth_pct: float | None = None
    btc_adx: float | None = None
    btc_atr_pct: float | None = None


@dataclass(frozen=True, slots=True)
class RegimeView:
    """The regime as the entry gates see it for one tick."""

    inputs: RegimeInputs = field(default_factory=RegimeInputs)
    gate_on: bool = True
    gate_reason: RegimeReason = RegimeReason.DISABLED
    auto_reverse: bool = False


def _number(snapshot: Mapping[str, object], key: str) -> float | None:
    value = snapshot.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def trend_up(snapshot: Mapping[str, object]) -> bool | None:
    """Return EMA_fast > EMA_slow, or None when either is missing or not positive."""
    fast, slow = _number(snapshot, "EMA_fast"), _number(snapshot, "EMA_slow")
    if fast is None or slow is None or fast <= 0 or slow <= 0:
        return None
    return fast > slow


def breadth_pct(trends: Mapping[str, bool], symbols: Iterable[str]) -> float | None:
    """Return 100 x (symbols trending up) / (symbols with a known trend); None if none is known."""
    known = [trends[s] for s in symbols if s in trends]
    if not known:
        return None
    return 100.0 * sum(known) / len(known)


def btc_metrics(snapshot: Mapping[str, object]) -> tuple[float | None, float | None]:
    """Return (ADX, ATR / Close) of the anchor's snapshot; None for what is missing."""
    adx, atr, close = _number(snapshot, "ADX"), _number(snapshot, "ATR"), _number(snapshot, "Close")
    atr_pct = atr / close if atr is not None and close is not None and close > 0 else None
    return adx, atr_pct


def regime_gate(cfg: MarketRegimeConfig, inputs: RegimeInputs) -> tuple[bool, RegimeReason]:
    """Return (entries allowed, reason) of the regime gate."""
    if not cfg.enable_regime_gate:
        return True, RegimeReason.DISABLED
    breadth = inputs.breadth_pct
    if breadth is None:
        return cfg.regime_gate_fail_open, RegimeReason.BREADTH_MISSING
    if cfg.regime_gate_breadth_low <= breadth <= cfg.regime_gate_breadth_high:
        return False, RegimeReason.BREADTH_CHOP
    if inputs.btc_adx is None or inputs.btc_atr_pct is None:
        return cfg.regime_gate_fail_open, RegimeReason.BTC_METRICS_MISSING
    if inputs.btc_adx < cfg.regime_gate_btc_adx_min:
        return False, RegimeReason.BTC_ADX_LOW
    if inputs.btc_atr_pct < cfg.regime_gate_btc_atr_pct_min:
        return False, RegimeReason.BTC_ATR_LOW
    return True, RegimeReason.TREND_OK


def breadth_filter(
    cfg: MarketRegimeConfig, signal: Signal, breadth: float | None
) -> tuple[bool, BreadthReason]:
    """Return (entry allowed, reason) of the directional breadth filter for a BUY/SELL signal."""
    if not cfg.enable_regime_filter or signal is Signal.NEUTRAL:
        return True, BreadthReason.DISABLED
    if breadth is None:
        return cfg.regime_gate_fail_open, BreadthReason.BREADTH_MISSING
    if signal is Signal.BUY and breadth < cfg.breadth_block_long_below:
        return False, BreadthReason.LONG_BLOCKED
    if signal is Signal.SELL and breadth > cfg.breadth_block_short_above:
        return False, BreadthReason.SHORT_BLOCKED
    return True, BreadthReason.OK


def auto_reverse_active(cfg: MarketRegimeConfig, breadth: float | None) -> bool:
    """True when signals are to be swapped: enabled and breadth inside the auto-reverse band."""
    if not cfg.enable_auto_reverse or breadth is None:
        return False
    return cfg.auto_reverse_breadth_low <= breadth <= cfg.auto_reverse_breadth_high


def reversed_signal(signal: Signal) -> Signal:
    """Return the opposite entry signal (NEUTRAL stays NEUTRAL)."""
    if signal is Signal.BUY:
        return Signal.SELL
    if signal is Signal.SELL:
        return Signal.BUY
    return signal


def wants_snapshots(cfg: MarketRegimeConfig) -> bool:
    """True when any regime feature needs every symbol's indicators (breadth, BTC metrics)."""
    return cfg.enable_regime_filter or cfg.enable_regime_gate or cfg.enable_auto_reverse


class RegimeTracker:
    """Each symbol's last known trend and the anchor's last metrics (rebuilt from shard answers)."""

    def __init__(self, anchor: str = ANCHOR_SYMBOL) -> None:
        self._anchor = anchor.upper()
        self._trends: dict[str, bool] = {}
        self._btc: tuple[float | None, float | None] = (None, None)

    def observe(self, symbol: str, snapshot: Mapping[str, object]) -> None:
        """Record the indicators of a symbol's newly evaluated candle (an empty snapshot is ignored)."""
        if not snapshot:
            return
        trend = trend_up(snapshot)
        if trend is not None:
            self._trends[symbol.upper()] = trend
        if symbol.upper() == self._anchor:
            self._btc = btc_metrics(snapshot)

    def view(self, cfg: MarketRegimeConfig, watch: Iterable[str]) -> RegimeView:
        """Return this tick's regime over the watchlist `watch`."""
        adx, atr_pct = self._btc
        inputs = RegimeInputs(breadth_pct(self._trends, watch), adx, atr_pct)
        gate_on, reason = regime_gate(cfg, inputs)
        return RegimeView(inputs, gate_on, reason, auto_reverse_active(cfg, inputs.breadth_pct))

    def observe_decisions(self, decisions: Mapping[str, ShardDecision]) -> None:
        """Record the snapshot of every decision evaluated this tick."""
        for symbol, decision in decisions.items():
            if decision.features is not None:
                self.observe(symbol, decision.features.as_snapshot())


def apply_auto_reverse(decisions: Mapping[str, ShardDecision], view: RegimeView) -> dict[str, ShardDecision]:
    """Return the decisions with BUY and SELL swapped when auto-reverse is active, else unchanged."""
    if not view.auto_reverse:
        return dict(decisions)
    return {s: dataclasses.replace(d, signal=reversed_signal(d.signal)) for s, d in decisions.items()}
