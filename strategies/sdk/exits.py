"""Exits of an SDK strategy: its declared `ExitRules` plus its optional indicator exit, one pure path.

`check_rules_exit` applies the price rules (trailing update, stop or trailing stop, take-profit)
to a `strategies.exits.PositionState` and returns the same `ExitDecision` record mei_alpha_v1's
`check_exit` returns, so the paper broker, the live broker and replay consume SDK exits without
a second code path. `evaluate_exit` adds the strategy's `indicator_exit`, fenced: a strategy that
raises there still gets its stop and take-profit applied (money path: the price rules never
depend on user code), and the fault comes back as a record.

Order: trailing update; stop (the tighter of the fixed stop and the trailing stop) hit; take-profit
hit; indicator exit. All close the whole position. Prices in quote units; ATR multiples of the
position's entry ATR (`PositionState.atr`, which falls back to 0.5 % of the entry price). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from strategies.enums import ExitAction, ExitReason, HoldReason
from strategies.exits import ExitDecision, PositionState
from strategies.sdk.enums import FaultKind
from strategies.sdk.strategy import ExitRules, Strategy, StrategyFault

Row = Mapping[str, Any]


def entry_atr(rules: ExitRules, row: Row) -> float:
    """Return the ATR to store on a new position: `rules.atr_column` of the entry row.

    0.0 when the value is missing, NaN or not positive (PositionState then uses its fallback).
    """
    value = row.get(rules.atr_column)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    if not math.isfinite(value) or value <= 0:
        return 0.0
    return float(value)


def _trailing(rules: ExitRules, position: PositionState, price: float, sign: float, profit_atr: float,
              atr: float) -> float | None:
    """Return the trailing stop after this price: started once in profit enough, never loosened."""
    trailing = position.trailing_sl
    start = rules.trailing_start_atr if rules.trailing_start_atr is not None else 0.0
    if rules.trailing_distance_atr is None or profit_atr < start:
        return trailing
    candidate = price - sign * rules.trailing_distance_atr * atr
    if trailing is None or sign * (candidate - trailing) > 0:
        return candidate
    return trailing


def _binding_stop(stop: float, trailing: float | None, sign: float) -> tuple[float, ExitReason]:
    """The tighter of the fixed stop and the trailing stop, with the reason it would close under."""
    if trailing is not None and sign * (trailing - stop) >= 0:
        return trailing, ExitReason.TRAILING_STOP
    return stop, ExitReason.STOP_LOSS


def _decision(action: ExitAction, reason: ExitReason | None, position: PositionState, trailing: float | None,
              levels: dict[str, float]) -> ExitDecision:
    size, fraction = (position.size_coins, 1.0) if action is ExitAction.CLOSE else (0.0, 0.0)
    return ExitDecision(action, reason, size, fraction, trailing, position.tp1_taken, HoldReason.NONE, levels)


def check_rules_exit(rules: ExitRules, position: PositionState, price: float) -> ExitDecision:
    """Apply the price rules at `price`; persist the returned `trailing_sl` whatever the action.

    Raises ValueError on a non-finite or non-positive price (never decide an exit on a bad price).
    """
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"exit check needs a finite price > 0, got {price!r}")
    sign = 1.0 if position.is_long else -1.0
    atr = position.atr
    entry = position.entry_price
    profit_atr = sign * (price - entry) / atr
    trailing = _trailing(rules, position, price, sign, profit_atr, atr)
    stop = entry - sign * rules.stop_loss_atr * atr
    tp = entry + sign * rules.take_profit_atr * atr if rules.take_profit_atr is not None else None
    levels = {"sl": stop, "tp": math.nan if tp is None else tp,
              "trailing_sl": math.nan if trailing is None else trailing, "profit_atr": profit_atr, "atr": atr}
    binding, stop_reason = _binding_stop(stop, trailing, sign)
    if sign * (price - binding) <= 0:
        return _decision(ExitAction.CLOSE, stop_reason, position, trailing, levels)
    if tp is not None and sign * (price - tp) >= 0:
        return _decision(ExitAction.CLOSE, ExitReason.TAKE_PROFIT, position, trailing, levels)
    return _decision(ExitAction.HOLD, None, position, trailing, levels)


def evaluate_exit(strategy: Strategy[Any], position: PositionState, price: float, rows: Sequence[Row],
                  symbol: str) -> tuple[ExitDecision, StrategyFault | None]:
    """Price rules, then the strategy's indicator exit (fenced). Returns (decision, fault or None).

    On a fault the decision is the price rules' alone (hold or close), never a skipped stop.
    """
    decision = check_rules_exit(strategy.rules, position, price)
    if decision.action is ExitAction.CLOSE or not rows:
        return decision, None
    try:
        reason = strategy.indicator_exit(position.side, rows[-strategy.LOOKBACK_ROWS:])
    except Exception as e:  # the per-symbol fence, as in strategy.evaluate
        return decision, StrategyFault(strategy.NAME, symbol, FaultKind.EXCEPTION, f"{type(e).__name__}: {e}")
    if reason is None:
        return decision, None
    if not isinstance(reason, ExitReason):
        detail = f"indicator_exit returned {reason!r}, not an ExitReason or None"
        return decision, StrategyFault(strategy.NAME, symbol, FaultKind.BAD_OUTPUT, detail)
    return _decision(ExitAction.CLOSE, reason, position, decision.trailing_sl, decision.levels), None
