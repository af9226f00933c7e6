"""Entry gates, sizing/leverage, pyramiding rules: crafted cases per reason code + properties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.config import StrategyConfig, default_config, parse_overrides
from strategies.enums import Confidence, ExitReason, PositionSide, Signal, SizingBlock
from strategies.exits import PositionState
from strategies.sizing import (
    LastClose,
    apply_add,
    check_add,
    check_entry_gates,
    compute_add_sizing,
    compute_entry_sizing,
    entry_leverage,
    reentry_cooldown_minutes,
    size_for_notional_bounds,
)

NOW = 100 * 3_600_000
DEFAULT = default_config("ETH")


def cfg_with(doc: dict[str, Any]) -> StrategyConfig:
    return parse_overrides({"global": doc}).resolve("ETH")


def snap(**kw: Any) -> dict[str, Any]:
    return {
        "ADX": 30.0,
        "ADX_slope": 0.1,
        "ATR": 1.0,
        "ATR_slope": 0.0,
        "RSI": 55.0,
        "MACD_hist": 0.2,
        "prev_MACD_hist": 0.1,
        **kw,
    }


# ---------------------------------------------------------------- entry sizing


def test_sizing_reference_formula_high_confidence() -> None:
    # margin = 10000 x 0.03 x conf 1.0 x ADX(40 -> full) 1.0 x vol clamp(100 x 0.01 / 1, .5, 1) = 300
    s = compute_entry_sizing(
        equity_usd=10_000, price=100.0, confidence=Confidence.HIGH, adx=40.0, atr=1.0, cfg=DEFAULT
    )
    assert s.ok and s.block is None
    assert (s.margin_usd, s.leverage, s.notional_usd, s.size_coins) == pytest.approx(
        (300.0, 5.0, 1500.0, 15.0)
    )


def test_sizing_scales_down_with_confidence_adx_and_volatility() -> None:
    # medium 0.7, ADX 22 -> 0.6, ATR 4 -> vol scalar clamp(0.25) = 0.5  => 300 x 0.7 x 0.6 x 0.5 = 63
    s = compute_entry_sizing(
        equity_usd=10_000, price=100.0, confidence=Confidence.MEDIUM, adx=22.0, atr=4.0, cfg=DEFAULT
    )
    assert s.margin_usd == pytest.approx(63.0) and s.leverage == 3.0
    static = cfg_with(
        {"trade": {"enable_dynamic_sizing": False, "enable_dynamic_leverage": False, "leverage": 2.0}}
    )
    s2 = compute_entry_sizing(
        equity_usd=10_000, price=100.0, confidence=Confidence.LOW, adx=0.0, atr=4.0, cfg=static
    )
    assert s2.margin_usd == pytest.approx(150.0) and s2.leverage == 2.0  # vol scalar is always applied


def test_sizing_leverage_caps_and_tier_limit() -> None:
    assert entry_leverage(Confidence.HIGH, cfg_with({"trade": {"leverage_max_cap": 2.0}})) == 2.0
    assert entry_leverage(Confidence.LOW, cfg_with({"trade": {"leverage_low": 0.5}})) == 1.0
    s = compute_entry_sizing(
        equity_usd=10_000,
        price=100.0,
        confidence=Confidence.HIGH,
        adx=40.0,
        atr=1.0,
        cfg=DEFAULT,
        tier_max_leverage=3.0,
    )
    assert s.leverage == 3.0 and s.notional_usd == pytest.approx(900.0)


def test_sizing_min_margin_and_max_notional_per_order() -> None:
    cfg = cfg_with({"trade": {"min_margin_usd": 6.0, "max_notional_usd_per_order": 15.0}})
    s = compute_entry_sizing(
        equity_usd=100.0, price=2.0, confidence=Confidence.LOW, adx=0.0, atr=0.1, cfg=cfg, sz_decimals=1
    )
    # margin max(0.75, 6) = 6 at 1x -> 6 USD < 10 min notional -> blocked (no bump by default)
    assert not s.ok and s.block is SizingBlock.BELOW_MIN_NOTIONAL
    bump = cfg_with(
        {"trade": {"min_margin_usd": 6.0, "max_notional_usd_per_order": 15.0, "bump_to_min_notional": True}}
    )
    s = compute_entry_sizing(
        equity_usd=100.0, price=2.0, confidence=Confidence.LOW, adx=0.0, atr=0.1, cfg=bump, sz_decimals=1
    )
    assert s.ok and s.size_coins == 5.0 and s.notional_usd == pytest.approx(10.0)
    big = compute_entry_sizing(
        equity_usd=100_000.0,
        price=2.0,
        confidence=Confidence.HIGH,
        adx=40.0,
        atr=0.02,
        cfg=bump,
        sz_decimals=1,
    )
    assert big.ok and big.notional_usd <= 15.0 and big.size_coins == 7.5


@pytest.mark.parametrize(
    ("kwargs", "block"),
    [
        ({"equity_usd": 0.0}, SizingBlock.BAD_INPUT),
        ({"price": math.nan}, SizingBlock.BAD_INPUT),
        ({"open_margin_usd": 5_900.0}, SizingBlock.MARGIN_CAP),
        ({"equity_usd": 20.0}, SizingBlock.BELOW_MIN_NOTIONAL),
    ],
)
def test_sizing_entry_blocks(kwargs: dict[str, float], block: SizingBlock) -> None:
    args: dict[str, Any] = {
        "equity_usd": 10_000.0,
        "price": 100.0,
        "confidence": Confidence.HIGH,
        "adx": 40.0,
        "atr": 1.0,
        "cfg": DEFAULT,
        **kwargs,
    }
    s = compute_entry_sizing(**args)
    assert not s.ok and s.block is block and s.size_coins == 0.0 and s.notional_usd == 0.0


@settings(max_examples=300, deadline=None)
@given(
    equity=st.floats(10.0, 1e7),
    price=st.floats(1e-4, 1e5),
    adx=st.floats(0.0, 100.0),
    atr_pct=st.floats(0.0, 0.2),
    conf=st.sampled_from(list(Confidence)),
    sz=st.integers(0, 6),
    open_margin=st.floats(0.0, 1e6),
)
def test_sizing_entry_invariants(
    equity: float, price: float, adx: float, atr_pct: float, conf: Confidence, sz: int, open_margin: float
) -> None:
    s = compute_entry_sizing(
        equity_usd=equity,
        price=price,
        confidence=conf,
        adx=adx,
        atr=price * atr_pct,
        cfg=DEFAULT,
        open_margin_usd=open_margin,
        sz_decimals=sz,
    )
    if not s.ok:
        assert s.block is not None and s.size_coins == 0.0
        return
    t = DEFAULT.trade
    assert s.notional_usd == pytest.approx(s.size_coins * price)
    assert s.margin_usd == pytest.approx(s.notional_usd / s.leverage)
    assert 1.0 <= s.leverage <= t.leverage_high
    assert s.notional_usd >= t.min_notional_usd * (1 - 1e-9)
    lots = s.size_coins * 10**sz
    assert abs(lots - round(lots)) <= 1e-6 * max(1.0, lots)  # on the lot grid
    assert (
        open_margin + s.details["requested_notional_usd"] / s.leverage
        <= equity * t.max_total_margin_pct + 1e-6
    )
    lower = {Confidence.HIGH: Confidence.MEDIUM, Confidence.MEDIUM: Confidence.LOW}.get(conf)
    if lower is not None:
        lesser = compute_entry_sizing(
            equity_usd=equity,
            price=price,
            confidence=lower,
            adx=adx,
            atr=price * atr_pct,
            cfg=DEFAULT,
            sz_decimals=None,
        )
        more = compute_entry_sizing(
            equity_usd=equity,
            price=price,
            confidence=conf,
            adx=adx,
            atr=price * atr_pct,
            cfg=DEFAULT,
            sz_decimals=None,
        )
        if lesser.ok and more.ok:
            assert more.notional_usd >= lesser.notional_usd


@settings(max_examples=200, deadline=None)
@given(
    notional=st.floats(0.0, 1e6),
    price=st.floats(1e-3, 1e5),
    sz=st.integers(0, 6),
    max_usd=st.none() | st.floats(10.0, 1e5),
)
def test_sizing_size_for_notional_bounds(
    notional: float, price: float, sz: int, max_usd: float | None
) -> None:
    size = size_for_notional_bounds(notional, price, sz, 10.0, max_usd)
    assert size >= 0.0
    if max_usd is not None:
        assert size * price <= max_usd * (1 + 1e-9)
    if max_usd is None or round(max_usd / price, sz) * price >= 10.0 + price / 10**sz:
        assert size * price >= 10.0 * (1 - 1e-9)


# ---------------------------------------------------------------- entry gates


def test_sizing_entry_gates_pass_and_each_block() -> None:
    ok = check_entry_gates(Signal.BUY, Confidence.HIGH, snap(), DEFAULT, now_ms=NOW)
    assert ok.ok and ok.block is None
    assert check_entry_gates(Signal.BUY, Confidence.MEDIUM, snap(), DEFAULT, now_ms=NOW).block is (
        SizingBlock.MIN_CONFIDENCE
    )
    assert check_entry_gates(
        Signal.BUY, Confidence.HIGH, snap(MACD_hist=-0.1), DEFAULT, now_ms=NOW
    ).block is (SizingBlock.SSF)
    assert (
        check_entry_gates(
            Signal.SELL, Confidence.HIGH, snap(MACD_hist=0.1, RSI=45.0), DEFAULT, now_ms=NOW
        ).block
        is SizingBlock.SSF
    )
    assert check_entry_gates(Signal.BUY, Confidence.HIGH, snap(RSI=71.0), DEFAULT, now_ms=NOW).block is (
        SizingBlock.REEF
    )
    assert (
        check_entry_gates(
            Signal.SELL, Confidence.HIGH, snap(RSI=29.0, MACD_hist=-0.1), DEFAULT, now_ms=NOW
        ).block
        is SizingBlock.REEF
    )
    with pytest.raises(ValueError):
        check_entry_gates(Signal.NEUTRAL, Confidence.HIGH, snap(), DEFAULT, now_ms=NOW)


def test_sizing_reentry_cooldown_pesc() -> None:
    assert reentry_cooldown_minutes(45.0, DEFAULT) == 45.0
    assert reentry_cooldown_minutes(20.0, DEFAULT) == 180.0
    assert reentry_cooldown_minutes(32.5, DEFAULT) == pytest.approx(112.5)
    recent = LastClose(PositionSide.LONG, NOW - 30 * 60_000, ExitReason.STOP_LOSS)
    blocked = check_entry_gates(
        Signal.BUY, Confidence.HIGH, snap(ADX=45.0), DEFAULT, now_ms=NOW, last_close=recent
    )
    assert blocked.block is SizingBlock.REENTRY_COOLDOWN
    other_side = check_entry_gates(
        Signal.SELL, Confidence.HIGH, snap(ADX=45.0, MACD_hist=-0.1), DEFAULT, now_ms=NOW, last_close=recent
    )
    assert other_side.ok
    flip = LastClose(PositionSide.LONG, NOW - 60_000, ExitReason.SIGNAL_FLIP)
    assert check_entry_gates(Signal.BUY, Confidence.HIGH, snap(), DEFAULT, now_ms=NOW, last_close=flip).ok
    old = LastClose(PositionSide.LONG, NOW - 50 * 60_000, ExitReason.STOP_LOSS)
    assert check_entry_gates(
        Signal.BUY, Confidence.HIGH, snap(ADX=45.0), DEFAULT, now_ms=NOW, last_close=old
    ).ok
    off = cfg_with({"trade": {"reentry_cooldown_minutes": 0}})
    assert check_entry_gates(Signal.BUY, Confidence.HIGH, snap(), off, now_ms=NOW, last_close=recent).ok


# ---------------------------------------------------------------- pyramiding


def pos(**kw: Any) -> PositionState:
    base = {
        "side": PositionSide.LONG,
        "entry_price": 100.0,
        "size_coins": 2.0,
        "entry_atr": 1.0,
        "entry_time_ms": NOW - 7_200_000,
        "leverage": 3.0,
        "last_add_time_ms": NOW - 7_200_000,
    }
    return PositionState(**{**base, **kw})


ADD_BLOCKS: dict[SizingBlock, tuple[PositionState, float, Confidence, dict[str, Any], StrategyConfig]] = {
    SizingBlock.PYRAMIDING_DISABLED: (
        pos(),
        101.0,
        Confidence.HIGH,
        snap(),
        cfg_with({"trade": {"enable_pyramiding": False}}),
    ),
    SizingBlock.MAX_ADDS: (pos(adds_count=2), 101.0, Confidence.HIGH, snap(), DEFAULT),
    SizingBlock.ADD_MIN_CONFIDENCE: (pos(), 101.0, Confidence.LOW, snap(), DEFAULT),
    SizingBlock.ADD_COOLDOWN: (
        pos(last_add_time_ms=NOW - 59 * 60_000),
        101.0,
        Confidence.HIGH,
        snap(),
        DEFAULT,
    ),
    SizingBlock.PARTIAL_TP_TAKEN: (pos(tp1_taken=True), 101.0, Confidence.HIGH, snap(), DEFAULT),
    SizingBlock.STOP_TOO_CLOSE: (pos(trailing_sl=100.8), 101.0, Confidence.HIGH, snap(), DEFAULT),
    SizingBlock.MACD_NOT_EXPANDING: (pos(), 101.0, Confidence.HIGH, snap(MACD_hist=0.05), DEFAULT),
    SizingBlock.RSI_GUARD: (pos(), 101.0, Confidence.HIGH, snap(RSI=76.0), DEFAULT),
    SizingBlock.ADD_MIN_PROFIT: (pos(), 100.4, Confidence.HIGH, snap(), DEFAULT),
}


@pytest.mark.parametrize("block", list(ADD_BLOCKS), ids=lambda b: b.value)
def test_sizing_add_blocks(block: SizingBlock) -> None:
    p, price, conf, s, cfg = ADD_BLOCKS[block]
    r = check_add(p, price=price, confidence=conf, snapshot=s, cfg=cfg, now_ms=NOW)
    assert not r.ok and r.block is block


def test_sizing_add_allowed_and_profit_threshold_halved_on_rising_adx() -> None:
    assert check_add(
        pos(), price=101.0, confidence=Confidence.MEDIUM, snapshot=snap(), cfg=DEFAULT, now_ms=NOW
    ).ok
    fast = snap(ADX_slope=1.0, ATR_slope=0.0)
    assert check_add(
        pos(), price=100.3, confidence=Confidence.HIGH, snapshot=fast, cfg=DEFAULT, now_ms=NOW
    ).ok
    short = pos(side=PositionSide.SHORT)
    assert check_add(
        short,
        price=99.0,
        confidence=Confidence.HIGH,
        snapshot=snap(MACD_hist=-0.2, RSI=45.0),
        cfg=DEFAULT,
        now_ms=NOW,
    ).ok


def test_sizing_add_sizing_uses_fraction_and_position_leverage() -> None:
    s = compute_add_sizing(
        pos(), equity_usd=10_000.0, price=100.0, confidence=Confidence.HIGH, adx=40.0, atr=1.0, cfg=DEFAULT
    )
    assert s.ok and s.leverage == 3.0 and s.margin_usd == pytest.approx(150.0)
    tier = compute_add_sizing(
        pos(),
        equity_usd=10_000.0,
        price=100.0,
        confidence=Confidence.HIGH,
        adx=40.0,
        atr=1.0,
        cfg=DEFAULT,
        tier_max_leverage=2.0,
    )
    assert not tier.ok and tier.block is SizingBlock.TIER_LEVERAGE


def test_sizing_apply_add_weights_entry_price_and_atr() -> None:
    after = apply_add(pos(tp1_taken=True), add_size_coins=1.0, fill_price=103.0, atr=2.5, now_ms=NOW)
    assert after.size_coins == 3.0 and after.entry_price == pytest.approx(101.0)
    assert after.entry_atr == pytest.approx(1.5) and after.adds_count == 1 and after.last_add_time_ms == NOW
    assert after.tp1_taken is False
    with pytest.raises(ValueError):
        apply_add(pos(), add_size_coins=0.0, fill_price=100.0, atr=1.0, now_ms=NOW)
