"""Hand-built candles for the SDK strategy tests: a quiet range, then whatever bar the test appends."""

from __future__ import annotations

from typing import Any

from strategies.sdk.strategy import DecisionContext, Row, Strategy, StrategyDecision, StrategyFault, evaluate

Candle = tuple[int, float, float, float, float, float]
MINUTE_MS = 60_000


def quiet_range(n: int) -> list[Candle]:
    """n bars with High 101, Low 99 (true range 2.0, no directional movement), Close 99.8/100.2, volume 10."""
    return [(i * MINUTE_MS, 100.0, 101.0, 99.0, 100.0 + (0.2 if i % 2 else -0.2), 10.0) for i in range(n)]


def then(candles: list[Candle], high: float, low: float, close: float, volume: float = 10.0) -> list[Candle]:
    """Return candles plus one bar opening at the previous close."""
    t = candles[-1][0] + MINUTE_MS
    return [*candles, (t, candles[-1][4], high, low, close, volume)]


def run(
    strategy: Strategy[Any], candles: list[Candle]
) -> tuple[StrategyDecision | StrategyFault, tuple[Row, ...]]:
    """Feed every candle through the strategy's incremental state; decide on the last bar."""
    state = strategy.indicator_set.incremental(strategy.LOOKBACK_ROWS)
    for candle in candles:
        state.update(*candle)
    return evaluate(strategy, state.rows(), DecisionContext(symbol="TEST", bars=state.bars)), state.rows()
