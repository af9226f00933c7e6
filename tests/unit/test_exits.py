"""Exit rules: one crafted case per exit reason and hold reason, plus property tests."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.config import StrategyConfig, default_config, parse_overrides
from strategies.enums import Confidence, ExitAction, ExitReason, HoldReason, PositionSide, Signal
from strategies.exits import PositionState, check_exit, round_down, round_up, with_exit_applied

NOW = 10 * 3_600_000


def long_pos(**kw: Any) -> PositionState:
    base = {"side": PositionSide.LONG, "entry_price": 100.0, "size_coins": 1.0, "entry_atr": 1.0,
            "entry_time_ms": NOW - 600_000, "confidence": Confidence.MEDIUM}
    return PositionState(**{**base, **kw})


def snap(**kw: Any) -> dict[str, Any]:
    base = {"ADX": 30.0, "ADX_slope": 0.1, "ATR": 1.0, "ATR_slope": 0.0, "EMA_fast": 101.0,
            "EMA_slow": 99.0, "EMA_macro": 90.0, "RSI": 55.0, "MACD_hist": 0.1, "prev_MACD_hist": 0.1,
            "prev2_MACD_hist": 0.1, "prev3_MACD_hist": 0.1, "bb_width": 0.04, "avg_bb_width": 0.04,
            "tp_mult": 4.0, "funding_rate": 0.0, "is_anomaly": False}
    return {**base, **kw}


def cfg_with(doc: dict[str, Any]) -> StrategyConfig:
    return parse_overrides({"global": doc}).resolve("ETH")


DEFAULT = default_config("ETH")

# reason -> (position, price, snapshot, cfg, signal)
Case = tuple[PositionState, float, dict[str, Any], StrategyConfig, Signal | None]
REASON_CASES: dict[ExitReason, Case] = {
    ExitReason.STOP_LOSS: (long_pos(), 97.9, snap(), DEFAULT, None),
    ExitReason.TRAILING_STOP: (long_pos(trailing_sl=100.8), 100.7, snap(), DEFAULT, None),
    ExitReason.TAKE_PROFIT: (long_pos(), 104.1, snap(), cfg_with({"trade": {"enable_partial_tp": False}}),
                             None),
    ExitReason.TAKE_PROFIT_PARTIAL: (long_pos(), 104.1, snap(), DEFAULT, None),
    ExitReason.TREND_BREAKDOWN: (long_pos(), 100.5, snap(EMA_fast=98.0), DEFAULT, None),
    ExitReason.TREND_EXHAUSTION: (long_pos(), 100.5, snap(ADX=15.0), DEFAULT, None),
    ExitReason.MACRO_BREAKDOWN: (long_pos(), 100.5, snap(EMA_macro=101.0),
                                 cfg_with({"filters": {"require_macro_alignment": True}}), None),
    ExitReason.STAGNATION: (long_pos(), 99.8, snap(ATR=0.5), DEFAULT, None),
    ExitReason.FUNDING_HEADWIND: (long_pos(), 99.5, snap(funding_rate=0.0002, ADX=24.0), DEFAULT, None),
    ExitReason.TSME: (long_pos(), 101.5, snap(ADX=55.0, ADX_slope=-1.0, MACD_hist=0.1, prev_MACD_hist=0.2,
                                              prev2_MACD_hist=0.3), DEFAULT, None),
    ExitReason.MACD_DIVERGENCE: (long_pos(), 101.6, snap(ADX=38.0, MACD_hist=0.1, prev_MACD_hist=0.2,
                                                         prev2_MACD_hist=0.3, prev3_MACD_hist=0.4),
                                 DEFAULT, None),
    ExitReason.RSI_OVEREXTENSION: (long_pos(), 100.5, snap(RSI=81.0), DEFAULT, None),
    ExitReason.SIGNAL_FLIP: (long_pos(), 100.5, snap(), DEFAULT, Signal.SELL),
}


def mirror_pos(p: PositionState) -> PositionState:
    trailing = None if p.trailing_sl is None else 200.0 - p.trailing_sl
    return replace(p, side=PositionSide.SHORT, entry_price=200.0 - p.entry_price, trailing_sl=trailing)


def mirror_snap(s: dict[str, Any]) -> dict[str, Any]:
    m = dict(s)
    for k in ("EMA_fast", "EMA_slow", "EMA_macro"):
        m[k] = 200.0 - s[k]
    for k in ("MACD_hist", "prev_MACD_hist", "prev2_MACD_hist", "prev3_MACD_hist", "funding_rate"):
        m[k] = -s[k]
    m["RSI"] = 100.0 - s["RSI"]
    return m


def test_exits_case_table_covers_every_exit_reason() -> None:
    assert set(REASON_CASES) == set(ExitReason)


def test_exits_neutral_state_holds() -> None:
    d = check_exit(long_pos(), 100.5, snap(), DEFAULT, NOW)
    assert (d.action, d.reason, d.hold_reason, d.size_coins) == (ExitAction.HOLD, None, HoldReason.NONE, 0.0)
    assert d.levels["sl"] == pytest.approx(98.0) and d.levels["tp"] == pytest.approx(104.0)


@pytest.mark.parametrize("reason", list(ExitReason), ids=lambda r: r.value)
@pytest.mark.parametrize("mirrored", [False, True], ids=["long", "short"])
def test_exits_each_reason_fires(reason: ExitReason, mirrored: bool) -> None:
    pos, price, s, cfg, signal = REASON_CASES[reason]
    if mirrored:
        pos, price, s = mirror_pos(pos), 200.0 - price, mirror_snap(s)
        signal = {Signal.SELL: Signal.BUY}.get(signal, signal) if signal else None
    d = check_exit(pos, price, s, cfg, NOW, symbol="ETH", signal=signal, sz_decimals=4)
    assert d.reason is reason
    if reason is ExitReason.TAKE_PROFIT_PARTIAL:
        assert d.action is ExitAction.REDUCE and d.size_coins == 0.5 and d.fraction == 0.5 and d.tp1_taken
        assert d.trailing_sl is not None and (d.trailing_sl >= pos.entry_price if not mirrored
                                              else d.trailing_sl <= pos.entry_price)
    else:
        assert d.action is ExitAction.CLOSE and d.size_coins == pos.size_coins and d.fraction == 1.0


def test_exits_stagnation_exempts_paxg_and_funding_is_inert_at_zero() -> None:
    pos, price, s, cfg, _ = REASON_CASES[ExitReason.STAGNATION]
    assert check_exit(pos, price, s, cfg, NOW, symbol="PAXG").action is ExitAction.HOLD
    pos, price, s, cfg, _ = REASON_CASES[ExitReason.FUNDING_HEADWIND]
    assert check_exit(pos, price, {**s, "funding_rate": 0.0}, cfg, NOW).action is ExitAction.HOLD
    assert check_exit(pos, price, {**s, "funding_rate": -0.0002}, cfg, NOW).action is ExitAction.HOLD


def test_exits_partial_tp_then_trailing_manages_the_rest() -> None:
    first = check_exit(long_pos(), 104.1, snap(), DEFAULT, NOW, sz_decimals=2)
    after = with_exit_applied(long_pos(), first)
    assert after is not None and after.size_coins == pytest.approx(0.5) and after.tp1_taken
    again = check_exit(after, 104.2, snap(), DEFAULT, NOW)
    assert again.action is ExitAction.HOLD and again.hold_reason is HoldReason.PARTIAL_TP_DONE
    assert again.trailing_sl is not None and again.trailing_sl >= first.trailing_sl  # type: ignore[operator]
    assert with_exit_applied(after, check_exit(after, 90.0, snap(), DEFAULT, NOW)) is None


def test_exits_partial_too_small_or_remainder_too_small_closes_fully() -> None:
    small = long_pos(size_coins=0.15)  # part 0.075 coins ~ 7.8 USD < 10 USD min partial
    d = check_exit(small, 104.1, snap(), DEFAULT, NOW, sz_decimals=3)
    assert (d.action, d.reason) == (ExitAction.CLOSE, ExitReason.TAKE_PROFIT)
    cfg = cfg_with({"trade": {"tp_partial_pct": 0.95}})  # remainder 0.05 coins ~ 5 USD < 10 min notional
    d = check_exit(long_pos(), 104.1, snap(), cfg, NOW, sz_decimals=3)
    assert (d.action, d.reason) == (ExitAction.CLOSE, ExitReason.TAKE_PROFIT)


def test_exits_partial_atr_mult_moves_trigger_and_second_leg_at_full_tp() -> None:
    cfg = cfg_with({"trade": {"tp_partial_atr_mult": 1.0}})
    d = check_exit(long_pos(), 101.05, snap(), cfg, NOW)
    assert d.reason is ExitReason.TAKE_PROFIT_PARTIAL and d.levels["tp_trigger"] == pytest.approx(101.0)
    rest = with_exit_applied(long_pos(), d)
    assert rest is not None
    assert check_exit(rest, 102.0, snap(), cfg, NOW).action is ExitAction.HOLD
    assert check_exit(rest, 104.1, snap(), cfg, NOW).reason is ExitReason.TAKE_PROFIT


GUARDS = [h for h in HoldReason if h not in (HoldReason.NONE, HoldReason.PARTIAL_TP_DONE)]


@pytest.mark.parametrize("hold", GUARDS, ids=lambda h: h.value)
def test_exits_guards_hold(hold: HoldReason) -> None:
    pos, s = long_pos(), snap(RSI=81.0)  # would close on RSI overextension without the guard
    kwargs: dict[str, Any] = {}
    cfg = DEFAULT
    if hold is HoldReason.ANOMALY_BLOCK:
        cfg, s = cfg_with({"filters": {"block_exits_on_anomaly": True}}), {**s, "is_anomaly": True}
        price = 100.5
    elif hold is HoldReason.EXIT_COOLDOWN:
        kwargs["last_close_ms"], price = NOW - 5_000, 100.5
    else:
        cfg, price = cfg_with({"trade": {"block_exits_on_extreme_dev": True}}), 150.0
    d = check_exit(pos, price, s, cfg, NOW, **kwargs)
    assert d.action is ExitAction.HOLD and d.hold_reason is hold


def test_exits_cooldown_yields_to_a_breached_plain_stop() -> None:
    d = check_exit(long_pos(), 97.5, snap(), DEFAULT, NOW, last_close_ms=NOW - 5_000)
    assert d.reason is ExitReason.STOP_LOSS
    assert check_exit(long_pos(), 100.5, snap(RSI=81.0), DEFAULT, NOW,
                      last_close_ms=NOW - 20_000).reason is ExitReason.RSI_OVEREXTENSION


def test_exits_stop_multipliers() -> None:
    # underwater with falling ADX: stop tightens to 2.0 * 0.8 ATR
    d = check_exit(long_pos(), 98.5, snap(ADX_slope=-0.5), DEFAULT, NOW)
    assert d.levels["sl"] == pytest.approx(100.0 - 1.6)
    # funding tailwind for a long (negative rate) widens it by 1.2
    d = check_exit(long_pos(), 100.2, snap(funding_rate=-0.0001), DEFAULT, NOW)
    assert d.levels["sl"] == pytest.approx(100.0 - 2.4)
    # breakeven once profit >= 0.7 ATR
    d = check_exit(long_pos(), 100.8, snap(), DEFAULT, NOW)
    assert d.levels["sl"] == pytest.approx(100.05)


def test_exits_round_helpers() -> None:
    assert round_down(0.3, 1) == 0.3 and round_down(0.129, 2) == 0.12 and round_up(0.121, 2) == 0.13
    assert round_up(0.3, 1) == 0.3 and round_down(1.23456, None) == 1.23456


@st.composite
def scenario(draw: st.DrawFn) -> tuple[PositionState, float, dict[str, Any], int | None]:
    entry = draw(st.floats(1.0, 1000.0))
    atr = draw(st.floats(0.0, entry * 0.2))
    side = draw(st.sampled_from(list(PositionSide)))
    trailing = draw(st.none() | st.floats(entry * 0.5, entry * 1.5))
    pos = PositionState(side=side, entry_price=entry, size_coins=draw(st.floats(0.001, 100.0)),
                        entry_atr=atr,
                        entry_time_ms=0, confidence=draw(st.sampled_from(list(Confidence))),
                        entry_adx_threshold=draw(st.floats(0.0, 30.0)), trailing_sl=trailing,
                        tp1_taken=draw(st.booleans()))
    price = draw(st.floats(entry * 0.5, entry * 1.5))
    s = snap(ADX=draw(st.floats(0.0, 80.0)), ADX_slope=draw(st.floats(-5, 5)),
             ATR=draw(st.floats(0.0, entry * 0.2)), ATR_slope=draw(st.floats(-1, 1)),
             RSI=draw(st.floats(0, 100)),
             EMA_fast=draw(st.floats(entry * 0.8, entry * 1.2)),
             EMA_slow=draw(st.floats(entry * 0.8, entry * 1.2)),
             MACD_hist=draw(st.floats(-1, 1)), prev_MACD_hist=draw(st.floats(-1, 1)),
             funding_rate=draw(st.floats(-0.001, 0.001)), tp_mult=draw(st.sampled_from([3.0, 4.0, 7.0])))
    return pos, price, s, draw(st.none() | st.integers(0, 60_000))


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_exits_properties(case: tuple[PositionState, float, dict[str, Any], int | None]) -> None:
    pos, price, s, since_close = case
    last_close = None if since_close is None else NOW - since_close
    d = check_exit(pos, price, s, DEFAULT, NOW, sz_decimals=3, last_close_ms=last_close)
    sign = 1.0 if pos.side is PositionSide.LONG else -1.0
    assert 0.0 <= d.size_coins <= pos.size_coins
    if d.action is ExitAction.HOLD:
        assert d.size_coins == 0.0 and d.reason is None
    if d.action is ExitAction.REDUCE:
        assert d.reason is ExitReason.TAKE_PROFIT_PARTIAL and 0 < d.fraction < 1 and d.tp1_taken
    if d.action is ExitAction.CLOSE:
        assert d.fraction == 1.0 and d.reason is not None
    # the trailing stop only ratchets in the position's favour
    if pos.trailing_sl is not None and d.trailing_sl is not None:
        assert sign * (d.trailing_sl - pos.trailing_sl) >= 0
    no_trailing = pos.trailing_sl is None and d.trailing_sl is None
    if no_trailing and d.hold_reason is HoldReason.NONE and "sl" in d.levels:
        # without a trailing stop the stop is never beyond entry + breakeven buffer
        buffer = DEFAULT.trade.breakeven_buffer_atr * pos.atr
        assert sign * (d.levels["sl"] - pos.entry_price) <= buffer + 1e-9
    # an unguarded hold means the price is strictly on the safe side of the stop
    if d.action is ExitAction.HOLD and d.hold_reason in (HoldReason.NONE, HoldReason.PARTIAL_TP_DONE):
        assert sign * (price - d.levels["sl"]) > 0
    if d.reason is ExitReason.STOP_LOSS:
        assert sign * (price - d.levels["sl"]) <= 0


def test_exits_reject_bad_price_and_position() -> None:
    with pytest.raises(ValueError, match="price"):
        check_exit(long_pos(), math.nan, snap(), DEFAULT, NOW)
    with pytest.raises(ValueError, match="size_coins"):
        long_pos(size_coins=0.0)
