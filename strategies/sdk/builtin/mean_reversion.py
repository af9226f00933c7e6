"""rsi_bollinger_reversion: fade a stretched move in a range, exit at the middle band.

Entry: BUY when the closed bar's Close is below the lower Bollinger band AND RSI is below
`rsi_oversold`, while ADX is below `max_adx` (no strong trend to fight); SELL mirrored above the
upper band with RSI above `rsi_overbought`. Score = how far Close is beyond the band, in ATR;
confidence HIGH when RSI is `high_confidence_rsi_margin` points beyond its threshold, else MEDIUM.

Exits: a fixed stop at `stop_loss_atr`, an optional take-profit in ATR, and (by default) the
reversion target: a long closes once Close is back at or above the middle band (a short at or
below), reported as `take_profit`. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.library import Adx, Atr, Bollinger, Indicator, Rsi
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
class ReversionParams(StrategyParams):
    """Parameters of `rsi_bollinger_reversion` (windows in bars, distances in ATR, RSI in 0..100)."""

    bb_window: int = param(20, lo=2, hi=1000, doc="Bollinger window, bars")
    bb_dev: float = param(2.0, lo=0.1, hi=10.0, doc="band width in population standard deviations")
    rsi_window: int = param(14, lo=2, hi=500, doc="RSI window, bars")
    rsi_oversold: float = param(30.0, lo=1.0, hi=50.0, doc="BUY only below this RSI")
    rsi_overbought: float = param(70.0, lo=50.0, hi=99.0, doc="SELL only above this RSI")
    high_confidence_rsi_margin: float = param(10.0, lo=0.0, hi=49.0, doc="RSI points beyond for HIGH")
    adx_window: int = param(14, lo=2, hi=500, doc="ADX window, bars")
    max_adx: float = param(25.0, lo=0.0, hi=100.0, doc="enter only while ADX is below this; 100 = off")
    atr_window: int = param(14, lo=2, hi=500, doc="ATR window, bars")
    stop_loss_atr: float = param(2.0, lo=0.1, hi=50.0, doc="fixed stop distance from entry")
    take_profit_atr: float = param(0.0, lo=0.0, hi=100.0, doc="take-profit distance; 0 = off")
    exit_at_mid: bool = param(True, doc="close once Close is back at the middle band")
    allow_short: bool = param(True, doc="take SELL entries")

    def cross_check(self) -> Sequence[tuple[str, str]]:
        if not self.rsi_oversold < self.rsi_overbought:
            return [("rsi_oversold", f"must be below rsi_overbought ({self.rsi_overbought})")]
        return ()


class RsiBollingerReversion(Strategy[ReversionParams]):
    """RSI + Bollinger mean reversion in low-ADX regimes (see the module docstring)."""

    NAME = "rsi_bollinger_reversion"
    SUMMARY = "Bollinger band + RSI mean reversion while ADX is low; exit at the middle band"
    PARAMS = ReversionParams
    LOOKBACK_ROWS = 1

    def indicators(self) -> Sequence[Indicator]:
        p = self.params
        return (
            Bollinger(name="bb", window=p.bb_window, dev=p.bb_dev),
            Rsi(name="rsi", window=p.rsi_window),
            Atr(name="atr", window=p.atr_window),
            Adx(name="adx", window=p.adx_window),
        )

    def warmup_bars(self) -> int:
        p = self.params
        return max(p.bb_window, p.rsi_window + 1, p.atr_window, 2 * p.adx_window)

    def exit_rules(self) -> ExitRules:
        p = self.params
        return ExitRules(atr_column="atr", stop_loss_atr=p.stop_loss_atr,
                         take_profit_atr=p.take_profit_atr if p.take_profit_atr > 0 else None)

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        p, cur = self.params, rows[-1]
        close, atr, rsi = cur["Close"], cur["atr"], cur["rsi"]
        if not (atr > 0 and cur["adx"] < p.max_adx):
            return NEUTRAL
        below = (cur["bb_low"] - close) / atr
        above = (close - cur["bb_high"]) / atr
        margin = p.high_confidence_rsi_margin
        if below > 0 and rsi < p.rsi_oversold:
            signal, depth, high = Signal.BUY, below, rsi <= p.rsi_oversold - margin
        elif p.allow_short and above > 0 and rsi > p.rsi_overbought:
            signal, depth, high = Signal.SELL, above, rsi >= p.rsi_overbought + margin
        else:
            return NEUTRAL
        details = {k: float(v) for k, v in (("band_depth_atr", depth), ("rsi", rsi), ("adx", cur["adx"]),
                                            ("bb_mid", cur["bb_mid"]), ("atr", atr)) if math.isfinite(v)}
        reason = "oversold_below_band" if signal is Signal.BUY else "overbought_above_band"
        confidence = Confidence.HIGH if high else Confidence.MEDIUM
        return StrategyDecision(signal, confidence, depth, reason, details)

    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        if not self.params.exit_at_mid:
            return None
        cur = rows[-1]
        if side is PositionSide.LONG and cur["Close"] >= cur["bb_mid"]:
            return ExitReason.TAKE_PROFIT
        if side is PositionSide.SHORT and cur["Close"] <= cur["bb_mid"]:
            return ExitReason.TAKE_PROFIT
        return None

    def decide_columns(self, window: ColumnWindow) -> ColumnDecisions | None:
        p = self.params
        close, atr, rsi = window.col("Close"), window.col("atr"), window.col("rsi")
        with np.errstate(all="ignore"):
            below = (window.col("bb_low") - close) / atr
            above = (close - window.col("bb_high")) / atr
            ok = (atr > 0) & (window.col("adx") < p.max_adx)
        buy = ok & (below > 0) & (rsi < p.rsi_oversold)
        sell = ok & ~buy & (above > 0) & (rsi > p.rsi_overbought) & p.allow_short
        margin = p.high_confidence_rsi_margin
        high = np.where(buy, rsi <= p.rsi_oversold - margin, rsi >= p.rsi_overbought + margin)
        depth = np.where(buy, below, np.where(sell, above, 0.0))
        reason = np.where(buy, 0, np.where(sell, 1, -1))
        signal = buy.astype(np.int8) - sell.astype(np.int8)
        return ColumnDecisions(signal, np.where(high, 2, 1), depth, reason,
                               ("oversold_below_band", "overbought_above_band"))

    def indicator_exit_columns(self, side: PositionSide, window: ColumnWindow) -> np.ndarray | None:
        close, mid = window.col("Close"), window.col("bb_mid")
        if not self.params.exit_at_mid:
            return np.zeros(len(close), dtype=bool)
        with np.errstate(invalid="ignore"):
            return close >= mid if side is PositionSide.LONG else close <= mid
