"""Deliberately broken strategies for the fault-isolation tests (never an example to copy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from strategies.sdk import (
    Atr,
    Confidence,
    DecisionContext,
    ExitRules,
    Row,
    Signal,
    Strategy,
    StrategyDecision,
    StrategyParams,
    param,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultyParams(StrategyParams):
    mode: str = param("raise", doc="raise | nan | type: how decide() fails")
    only_symbol: str = param("", doc="fail on this symbol only ('' = every symbol); others BUY")


class Faulty(Strategy[FaultyParams]):
    """Fails in decide() on `only_symbol`; elsewhere a BUY every bar (so the other symbols visibly trade)."""

    NAME = "faulty"
    PARAMS = FaultyParams
    LOOKBACK_ROWS = 1

    def indicators(self) -> Sequence[Atr]:
        return (Atr(name="atr", window=14),)

    def warmup_bars(self) -> int:
        return 15

    def exit_rules(self) -> ExitRules:
        return ExitRules(atr_column="atr", stop_loss_atr=50.0)

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        p = self.params
        if p.only_symbol in ("", ctx.symbol):
            if p.mode == "raise":
                raise ZeroDivisionError("user bug")
            if p.mode == "nan":
                return StrategyDecision(Signal.BUY, Confidence.HIGH, math.nan)
            return "BUY"  # type: ignore[return-value]
        return StrategyDecision(Signal.BUY, Confidence.HIGH, 1.0, "always")
