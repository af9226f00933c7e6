"""donchian_breakout: the classic channel breakout (turtle style), sized and stopped in ATR.

Entry: BUY when the closed bar's Close clears the highest High of the previous `channel_bars`
bars by more than `min_breakout_atr` ATR (SELL mirrored on the lowest Low), with the bar's volume
at least `min_volume_ratio` x its SMA. Score = the breakout distance in ATR (a cleaner break ranks
higher); confidence HIGH from `high_confidence_atr`, MEDIUM from half of it, else LOW.

Exits: a fixed stop at `stop_loss_atr`, an optional take-profit, a trailing stop once the trade
is `trailing_start_atr` in profit, and the turtle exit: a long closes when Close falls below the
lowest Low of the previous `exit_channel_bars` bars (a short above the highest High), reported as
`trend_breakdown`. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.library import Atr, Donchian, Indicator, Sma
from strategies.sdk.params import StrategyParams, param
from strategies.sdk.strategy import (
    NEUTRAL,
    ColumnDecisions,
    ColumnWindow,
    DecisionContext,
    ExitRules,
    Row,
    Strategy,
    StrategyDecision,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakoutParams(StrategyParams):
    """Parameters of `donchian_breakout` (windows in bars, distances in ATR)."""

    channel_bars: int = param(20, lo=2, hi=1000, doc="entry channel length (bars before the breakout bar)")
    exit_channel_bars: int = param(10, lo=2, hi=1000, doc="exit channel length (turtle exit)")
    atr_window: int = param(14, lo=2, hi=500, doc="ATR window, bars")
    volume_window: int = param(20, lo=1, hi=1000, doc="volume SMA window, bars")
    min_volume_ratio: float = param(1.0, lo=0.0, hi=100.0, doc="min volume / SMA volume; 0 = off")
    min_breakout_atr: float = param(0.0, lo=0.0, hi=10.0, doc="min channel clearance")
    high_confidence_atr: float = param(1.0, lo=0.0, hi=20.0, doc="breakout distance for HIGH confidence")
    stop_loss_atr: float = param(2.0, lo=0.1, hi=50.0, doc="fixed stop distance from entry")
    take_profit_atr: float = param(0.0, lo=0.0, hi=100.0, doc="take-profit distance; 0 = off")
    trailing_start_atr: float = param(1.0, lo=0.0, hi=50.0, doc="profit before the trailing stop starts")
    trailing_distance_atr: float = param(3.0, lo=0.0, hi=50.0, doc="trailing distance; 0 = off")
    allow_short: bool = param(True, doc="take SELL breakouts")

    def cross_check(self) -> Sequence[tuple[str, str]]:
        if self.high_confidence_atr < self.min_breakout_atr:
            return [("high_confidence_atr", f"must be >= min_breakout_atr ({self.min_breakout_atr})")]
        return ()


def _finite(**values: float) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


class DonchianBreakout(Strategy[BreakoutParams]):
    """Donchian channel breakout with ATR stops (see the module docstring)."""

    NAME = "donchian_breakout"
    SUMMARY = "Donchian channel breakout, volume-confirmed, ATR stop/trailing, turtle channel exit"
    PARAMS = BreakoutParams
    LOOKBACK_ROWS = 2

    def indicators(self) -> Sequence[Indicator]:
        p = self.params
        return (
            Donchian(name="dc", window=p.channel_bars),
            Donchian(name="dc_exit", window=p.exit_channel_bars),
            Atr(name="atr", window=p.atr_window),
            Sma(name="vol_sma", source="Volume", window=p.volume_window),
        )

    def warmup_bars(self) -> int:
        p = self.params
        return max(p.channel_bars + 1, p.exit_channel_bars + 1, p.volume_window, p.atr_window)

    def exit_rules(self) -> ExitRules:
        p = self.params
        trailing = p.trailing_distance_atr > 0
        return ExitRules(
            atr_column="atr",
            stop_loss_atr=p.stop_loss_atr,
            take_profit_atr=p.take_profit_atr if p.take_profit_atr > 0 else None,
            trailing_start_atr=p.trailing_start_atr if trailing else None,
            trailing_distance_atr=p.trailing_distance_atr if trailing else None,
        )

    def _confidence(self, strength: float) -> Confidence:
        high = self.params.high_confidence_atr
        if strength >= high:
            return Confidence.HIGH
        return Confidence.MEDIUM if strength >= high / 2 else Confidence.LOW

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        if len(rows) < 2:
            return NEUTRAL
        p, prev, cur = self.params, rows[-2], rows[-1]
        close, atr, volume, vol_sma = cur["Close"], cur["atr"], cur["Volume"], cur["vol_sma"]
        if not atr > 0:
            return NEUTRAL
        if p.min_volume_ratio > 0 and not volume >= p.min_volume_ratio * vol_sma:
            return NEUTRAL
        up = (close - prev["dc_high"]) / atr
        down = (prev["dc_low"] - close) / atr
        if up > p.min_breakout_atr:
            signal, strength, reason = Signal.BUY, up, "breakout_up"
        elif p.allow_short and down > p.min_breakout_atr:
            signal, strength, reason = Signal.SELL, down, "breakout_down"
        else:
            return NEUTRAL
        details = _finite(breakout_atr=strength, channel_high=prev["dc_high"], channel_low=prev["dc_low"],
                          atr=atr, volume_ratio=volume / vol_sma if vol_sma > 0 else math.nan)
        return StrategyDecision(signal, self._confidence(strength), strength, reason, details)

    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        if len(rows) < 2:
            return None
        prev, close = rows[-2], rows[-1]["Close"]
        if side is PositionSide.LONG and close < prev["dc_exit_low"]:
            return ExitReason.TREND_BREAKDOWN
        if side is PositionSide.SHORT and close > prev["dc_exit_high"]:
            return ExitReason.TREND_BREAKDOWN
        return None

    def decide_columns(self, window: ColumnWindow) -> ColumnDecisions | None:
        p = self.params
        close, atr = window.col("Close"), window.col("atr")
        prev_high, prev_low = window.col("dc_high", 1), window.col("dc_low", 1)
        with np.errstate(all="ignore"):
            up = (close - prev_high) / atr
            down = (prev_low - close) / atr
            ok = atr > 0
            if p.min_volume_ratio > 0:
                ok &= window.col("Volume") >= p.min_volume_ratio * window.col("vol_sma")
        buy = ok & (up > p.min_breakout_atr)
        sell = ok & ~buy & (down > p.min_breakout_atr) & p.allow_short
        strength = np.where(buy, up, np.where(sell, down, 0.0))
        high = p.high_confidence_atr
        confidence = np.where(strength >= high, 2, np.where(strength >= high / 2, 1, 0))
        reason = np.where(buy, 0, np.where(sell, 1, -1))
        return ColumnDecisions(buy.astype(np.int8) - sell.astype(np.int8), confidence, strength, reason,
                               ("breakout_up", "breakout_down"))

    def indicator_exit_columns(self, side: PositionSide, window: ColumnWindow) -> np.ndarray | None:
        close = window.col("Close")
        with np.errstate(invalid="ignore"):
            if side is PositionSide.LONG:
                return close < window.col("dc_exit_low", 1)
            return close > window.col("dc_exit_high", 1)
