"""EMA crossover with an RSI filter: the complete example of README "Write your own strategy".

Written only against the documented interface (`strategies.sdk`); referenced from the YAML as
`my_strategies.ema_cross:EmaCross` with this directory on PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strategies.sdk import (
    NEUTRAL,
    Atr,
    Confidence,
    DecisionContext,
    Ema,
    ExitReason,
    ExitRules,
    Indicator,
    PositionSide,
    Row,
    Rsi,
    Signal,
    Strategy,
    StrategyDecision,
    StrategyParams,
    param,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class EmaCrossParams(StrategyParams):
    """Windows in bars, distances in ATR; bounds are checked when the YAML is loaded."""

    fast: int = param(9, lo=2, hi=200, doc="fast EMA window")
    slow: int = param(21, lo=3, hi=500, doc="slow EMA window")
    rsi_window: int = param(14, lo=2, hi=100, doc="RSI window")
    rsi_max_long: float = param(70.0, lo=50.0, hi=100.0, doc="no BUY above this RSI")
    rsi_min_short: float = param(30.0, lo=0.0, hi=50.0, doc="no SELL below this RSI")
    stop_loss_atr: float = param(2.0, lo=0.1, hi=20.0, doc="stop distance from entry")
    take_profit_atr: float = param(4.0, lo=0.1, hi=50.0, doc="take-profit distance from entry")

    def cross_check(self) -> Sequence[tuple[str, str]]:
        return [("fast", f"must be below slow ({self.slow})")] if self.fast >= self.slow else ()


class EmaCross(Strategy[EmaCrossParams]):
    """BUY when the fast EMA crosses above the slow one (SELL below), unless RSI is stretched."""

    NAME = "ema_cross"
    SUMMARY = "EMA crossover with an RSI filter; ATR stop and take-profit; exit on the opposite cross"
    PARAMS = EmaCrossParams
    LOOKBACK_ROWS = 2  # decide() sees the closed bar and the one before it

    def indicators(self) -> Sequence[Indicator]:
        p = self.params
        return (Ema(name="ema_fast", window=p.fast), Ema(name="ema_slow", window=p.slow),
                Rsi(name="rsi", window=p.rsi_window), Atr(name="atr", window=14))

    def warmup_bars(self) -> int:
        return max(self.params.slow, self.params.rsi_window + 1, 14) + 1

    def exit_rules(self) -> ExitRules:
        p = self.params
        return ExitRules(atr_column="atr", stop_loss_atr=p.stop_loss_atr, take_profit_atr=p.take_profit_atr)

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        prev, cur = rows[-2], rows[-1]
        was_above = prev["ema_fast"] > prev["ema_slow"]
        is_above = cur["ema_fast"] > cur["ema_slow"]
        gap = abs(cur["ema_fast"] - cur["ema_slow"]) / cur["atr"] if cur["atr"] > 0 else 0.0
        if is_above and not was_above and cur["rsi"] < self.params.rsi_max_long:
            signal = Signal.BUY
        elif was_above and not is_above and cur["rsi"] > self.params.rsi_min_short:
            signal = Signal.SELL
        else:
            return NEUTRAL
        confidence = Confidence.HIGH if gap > 0.5 else Confidence.MEDIUM
        return StrategyDecision(signal, confidence, score=gap, reason="ema_cross",
                                details={"rsi": cur["rsi"]})

    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        cur = rows[-1]
        if side is PositionSide.LONG and cur["ema_fast"] < cur["ema_slow"]:
            return ExitReason.TREND_BREAKDOWN
        if side is PositionSide.SHORT and cur["ema_fast"] > cur["ema_slow"]:
            return ExitReason.TREND_BREAKDOWN
        return None
