"""rsi_bollinger_reversion: decisions on hand-built candles, its exits, and exact parity on real candles."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.builtin.mean_reversion import RsiBollingerReversion
from strategies.sdk.errors import StrategyParamError
from strategies.sdk.parity import strategy_parity
from strategies.sdk.strategy import WARMUP, StrategyDecision
from tests.unit.sdk_candles import Candle, quiet_range, run, then
from tests.unit.sdk_data import CANDLE_FILES, load_candles

BASE = quiet_range(40)


def moves(closes: list[float], base: list[Candle] = BASE) -> list[Candle]:
    """Append one bar per close, each from the previous close with a 0.1 wick beyond both."""
    candles = base
    for close in closes:
        prev = candles[-1][4]
        candles = then(candles, max(prev, close) + 0.1, min(prev, close) - 0.1, close)
    return candles


DROP = moves([98.5, 97.0, 95.5])  # three falling bars out of a quiet range
RALLY = moves([101.5, 103.0, 104.5])


def decide(candles: list[Candle], **params: object) -> StrategyDecision:
    decision, _ = run(RsiBollingerReversion.configure([params]), candles)
    assert isinstance(decision, StrategyDecision)
    return decision


def test_reversion_oversold_below_band_in_a_range_buys() -> None:
    strategy = RsiBollingerReversion.configure()
    decision, rows = run(strategy, DROP)
    cur = rows[-1]
    assert isinstance(decision, StrategyDecision)
    assert cur["Close"] < cur["bb_low"] and cur["rsi"] < 30 and cur["adx"] < 25
    assert (decision.signal, decision.confidence, decision.reason) == (
        Signal.BUY, Confidence.MEDIUM, "oversold_below_band")
    assert decision.score == (cur["bb_low"] - cur["Close"]) / cur["atr"]


def test_reversion_overbought_above_band_sells() -> None:
    decision = decide(RALLY)
    assert (decision.signal, decision.reason) == (Signal.SELL, "overbought_above_band")


def test_reversion_deep_rsi_is_high_confidence() -> None:
    assert decide(DROP, high_confidence_rsi_margin=4.0).confidence is Confidence.HIGH


@pytest.mark.parametrize(
    ("candles", "params"),
    [
        (DROP, {"max_adx": 10.0}),  # trending too hard to fade
        (DROP, {"rsi_oversold": 20.0}),  # not oversold enough
        (moves([98.5]), {}),  # a first dip stays inside the band
        (RALLY, {"allow_short": False}),
    ],
)
def test_reversion_blocked_entries_are_neutral(candles: list[Candle], params: dict[str, object]) -> None:
    assert decide(candles, **params).signal is Signal.NEUTRAL


def test_reversion_before_warmup_is_neutral() -> None:
    decision, _ = run(RsiBollingerReversion.configure(), moves([98.5, 97.0, 95.5], quiet_range(20)))
    assert decision is WARMUP


def test_reversion_exits_at_the_middle_band() -> None:
    strategy = RsiBollingerReversion.configure()
    _, rows = run(strategy, DROP)
    assert strategy.indicator_exit(PositionSide.LONG, rows) is None
    assert strategy.indicator_exit(PositionSide.SHORT, rows) is ExitReason.TAKE_PROFIT
    _, rows = run(strategy, moves([98.5, 97.0, 95.5, 98.0, 101.0]))
    assert rows[-1]["Close"] >= rows[-1]["bb_mid"]
    assert strategy.indicator_exit(PositionSide.LONG, rows) is ExitReason.TAKE_PROFIT
    off = RsiBollingerReversion.configure([{"exit_at_mid": False}])
    assert off.indicator_exit(PositionSide.LONG, rows) is None
    assert (strategy.rules.stop_loss_atr, strategy.rules.take_profit_atr) == (2.0, None)


def test_reversion_params_cross_check_names_the_field() -> None:
    with pytest.raises(StrategyParamError) as info:
        RsiBollingerReversion.configure([{"rsi_oversold": 50.0, "rsi_overbought": 50.0}], symbol="SOL")
    assert (info.value.strategy, info.value.symbol, info.value.field) == (
        "rsi_bollinger_reversion", "SOL", "rsi_oversold")


@pytest.fixture(scope="module", params=CANDLE_FILES, ids=[p.stem for p in CANDLE_FILES])
def candles(request: pytest.FixtureRequest) -> pd.DataFrame:
    return load_candles(request.param)


CUSTOM = {"bb_window": 30, "bb_dev": 1.5, "rsi_window": 7, "rsi_oversold": 35.0, "rsi_overbought": 65.0,
          "max_adx": 100.0, "adx_window": 10}


@pytest.mark.parametrize("params", [{}, CUSTOM], ids=["default", "custom"])
def test_reversion_batch_incremental_columnar_parity_on_real_candles(
    params: dict[str, object], candles: pd.DataFrame
) -> None:
    report = strategy_parity(RsiBollingerReversion.configure([params]), candles, "REAL")
    assert report.ok, report.to_dict()
    assert report.signals >= 5, "too few signals for the parity to mean much"
