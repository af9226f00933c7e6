"""donchian_breakout: decisions on hand-built candles, its exits, and exact parity on real candles."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.builtin.breakout import DonchianBreakout
from strategies.sdk.errors import StrategyParamError
from strategies.sdk.parity import strategy_parity
from strategies.sdk.strategy import WARMUP, StrategyDecision
from tests.unit.sdk_candles import quiet_range, run, then
from tests.unit.sdk_data import CANDLE_FILES, load_candles

BASE = quiet_range(30)


def decide(high: float, low: float, close: float, volume: float = 30.0, **params: object) -> StrategyDecision:
    decision, _ = run(DonchianBreakout.configure([params]), then(BASE, high, low, close, volume))
    assert isinstance(decision, StrategyDecision)
    return decision


def test_breakout_close_above_channel_with_volume_buys_high() -> None:
    strategy = DonchianBreakout.configure()
    decision, rows = run(strategy, then(BASE, 104.0, 100.0, 103.5, 30.0))
    assert isinstance(decision, StrategyDecision)
    assert (decision.signal, decision.confidence) == (Signal.BUY, Confidence.HIGH)
    assert decision.reason == "breakout_up"
    assert rows[-2]["dc_high"] == 101.0
    assert decision.score == (103.5 - 101.0) / rows[-1]["atr"]
    assert decision.details["channel_high"] == 101.0


def test_breakout_small_clearance_is_medium_and_ranks_lower() -> None:
    strong, weak = decide(104.0, 100.0, 103.5), decide(102.5, 100.0, 102.2)
    assert (weak.signal, weak.confidence) == (Signal.BUY, Confidence.MEDIUM)
    assert weak.score < strong.score


def test_breakout_close_below_channel_sells() -> None:
    decision = decide(100.0, 96.0, 96.5)
    assert (decision.signal, decision.confidence) == (Signal.SELL, Confidence.HIGH)
    assert decision.reason == "breakout_down"


def test_breakout_short_disabled_stays_neutral() -> None:
    assert decide(100.0, 96.0, 96.5, allow_short=False).signal is Signal.NEUTRAL


@pytest.mark.parametrize(
    ("high", "low", "close", "volume"),
    [
        (101.0, 99.5, 100.9, 30.0),  # inside the channel
        (101.5, 99.5, 101.0, 30.0),  # Close equal to the channel high: no break
        (104.0, 100.0, 103.5, 5.0),  # break without volume
    ],
)
def test_breakout_without_a_confirmed_break_is_neutral(
    high: float, low: float, close: float, volume: float
) -> None:
    assert decide(high, low, close, volume).signal is Signal.NEUTRAL


def test_breakout_volume_filter_can_be_switched_off() -> None:
    assert decide(104.0, 100.0, 103.5, 5.0, min_volume_ratio=0.0).signal is Signal.BUY


def test_breakout_min_clearance_in_atr() -> None:
    assert decide(104.0, 100.0, 103.5, min_breakout_atr=1.5, high_confidence_atr=2.0).signal is Signal.NEUTRAL


def test_breakout_before_warmup_is_neutral() -> None:
    decision, _ = run(DonchianBreakout.configure(), then(quiet_range(15), 104.0, 100.0, 103.5, 30.0))
    assert decision is WARMUP


def test_breakout_turtle_exit_and_price_rules() -> None:
    strategy = DonchianBreakout.configure([{"take_profit_atr": 5.0}])
    _, rows = run(strategy, then(BASE, 100.0, 98.0, 98.5))
    assert strategy.indicator_exit(PositionSide.LONG, rows) is ExitReason.TREND_BREAKDOWN
    assert strategy.indicator_exit(PositionSide.SHORT, rows) is None
    _, rows = run(strategy, then(BASE, 101.0, 99.0, 100.0))
    assert strategy.indicator_exit(PositionSide.LONG, rows) is None
    rules = strategy.rules
    assert (rules.atr_column, rules.stop_loss_atr, rules.take_profit_atr) == ("atr", 2.0, 5.0)
    assert (rules.trailing_start_atr, rules.trailing_distance_atr) == (1.0, 3.0)
    off = DonchianBreakout.configure([{"trailing_distance_atr": 0.0}]).rules
    assert off.trailing_distance_atr is None and off.trailing_start_atr is None
    assert off.take_profit_atr is None


def test_breakout_params_cross_check() -> None:
    with pytest.raises(StrategyParamError, match="high_confidence_atr"):
        DonchianBreakout.configure([{"min_breakout_atr": 2.0}], symbol="ETH")


@pytest.fixture(scope="module", params=CANDLE_FILES, ids=[p.stem for p in CANDLE_FILES])
def candles(request: pytest.FixtureRequest) -> pd.DataFrame:
    return load_candles(request.param)


@pytest.mark.parametrize("params", [{}, {"channel_bars": 55, "exit_channel_bars": 20, "min_volume_ratio": 0.0,
                                         "high_confidence_atr": 0.5, "min_breakout_atr": 0.1}])
def test_breakout_batch_incremental_columnar_parity_on_real_candles(
    params: dict[str, object], candles: pd.DataFrame
) -> None:
    report = strategy_parity(DonchianBreakout.configure([params]), candles, "REAL")
    assert report.ok, report.to_dict()
    assert report.signals >= 20, "too few signals for the parity to mean much"
