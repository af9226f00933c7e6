"""Paper fill model: price source order, slippage direction, fee math, funding sign and hours."""

from __future__ import annotations

import pytest

from engine.enums import FeeMode, OrderSide, PriceSource
from engine.execution.fill_model import (
    HOUR_MS,
    FeeSchedule,
    FillModelParams,
    MarketQuote,
    fee_usd,
    fill_price,
    funding_hours,
    funding_usd,
    order_side,
    realised_pnl_usd,
    weighted_entry,
)
from strategies.enums import PositionSide

NOW = 1_700_000_000_000
QUOTE = MarketQuote(mid=100.0, mid_ms=NOW - 1_000, bid=99.9, ask=100.1, bbo_ms=NOW - 1_000)


def test_fee_schedule_base_rates_match_hyperliquid_defaults():
    fees = FeeSchedule()
    assert fees.rate(FeeMode.TAKER) == pytest.approx(0.00045)
    assert fees.rate(FeeMode.MAKER) == pytest.approx(0.00015)


def test_fee_schedule_referral_discount_and_builder_fee_apply_to_rate():
    fees = FeeSchedule(referral_discount_pct=10.0, builder_fee_rate=0.0001)
    assert fees.rate(FeeMode.TAKER) == pytest.approx(0.00045 * 0.9 + 0.0001)


@pytest.mark.parametrize(
    "bad", [{"referral_discount_pct": 101.0}, {"taker_rate": -0.1}, {"maker_rate": float("nan")}]
)
def test_fee_schedule_invalid_values_raise(bad):
    with pytest.raises(ValueError):
        FeeSchedule(**bad)


def test_fee_usd_is_notional_times_rate():
    assert fee_usd(2.0, 50_000.0, 0.00045) == pytest.approx(45.0)


@pytest.mark.parametrize(
    ("side", "mode", "expected"),
    [
        (OrderSide.BUY, FeeMode.TAKER, 100.1 * 1.001),
        (OrderSide.SELL, FeeMode.TAKER, 99.9 * 0.999),
        (OrderSide.BUY, FeeMode.MAKER, 99.9),
        (OrderSide.SELL, FeeMode.MAKER, 100.1),
    ],
)
def test_fill_price_fresh_bbo_takes_side_and_taker_slips_adversely(side, mode, expected):
    params = FillModelParams(fee_mode=mode, slippage_bps=10.0)
    priced = fill_price(side, QUOTE, 95.0, params, NOW)
    assert priced is not None
    assert priced.source is PriceSource.REDIS_BBO
    assert priced.price == pytest.approx(expected)


def test_fill_price_stale_bbo_falls_back_to_fresh_mid():
    quote = MarketQuote(mid=100.0, mid_ms=NOW - 5_000, bid=99.0, ask=101.0, bbo_ms=NOW - 16_000)
    priced = fill_price(OrderSide.BUY, quote, 95.0, FillModelParams(slippage_bps=0.0), NOW)
    assert priced is not None and priced.source is PriceSource.REDIS_MID and priced.price == 100.0


def test_fill_price_bbo_disabled_uses_mid():
    priced = fill_price(OrderSide.BUY, QUOTE, 95.0, FillModelParams(use_bbo=False, slippage_bps=0.0), NOW)
    assert priced is not None and priced.price == 100.0


def test_fill_price_stale_quote_falls_back_to_reference_price():
    quote = MarketQuote(mid=100.0, mid_ms=NOW - 11_000)
    priced = fill_price(OrderSide.SELL, quote, 95.0, FillModelParams(slippage_bps=0.0), NOW)
    assert priced is not None and priced.source is PriceSource.LAST_CLOSE and priced.price == 95.0


def test_fill_price_future_dated_quote_is_not_fresh():
    quote = MarketQuote(mid=100.0, mid_ms=NOW + 60_000)
    priced = fill_price(OrderSide.SELL, quote, 95.0, FillModelParams(slippage_bps=0.0), NOW)
    assert priced is not None and priced.price == 95.0


@pytest.mark.parametrize("reference", [0.0, float("nan"), float("inf"), -1.0])
def test_fill_price_no_usable_price_returns_none(reference):
    assert fill_price(OrderSide.BUY, None, reference, FillModelParams(), NOW) is None


def test_order_side_opens_long_with_buy_and_closes_with_sell():
    assert order_side(PositionSide.LONG, opening=True) is OrderSide.BUY
    assert order_side(PositionSide.LONG, opening=False) is OrderSide.SELL
    assert order_side(PositionSide.SHORT, opening=True) is OrderSide.SELL
    assert order_side(PositionSide.SHORT, opening=False) is OrderSide.BUY


def test_realised_pnl_sign_follows_position_side():
    assert realised_pnl_usd(PositionSide.LONG, 100.0, 110.0, 2.0) == pytest.approx(20.0)
    assert realised_pnl_usd(PositionSide.SHORT, 100.0, 110.0, 2.0) == pytest.approx(-20.0)


def test_weighted_entry_is_size_weighted():
    assert weighted_entry(1.0, 100.0, 3.0, 200.0) == pytest.approx(175.0)
    with pytest.raises(ValueError):
        weighted_entry(0.0, 1.0, 0.0, 1.0)


def test_funding_positive_rate_makes_longs_pay_and_shorts_receive():
    assert funding_usd(PositionSide.LONG, 2.0, 100.0, 0.0001) == pytest.approx(-0.02)
    assert funding_usd(PositionSide.SHORT, 2.0, 100.0, 0.0001) == pytest.approx(0.02)


def test_funding_hours_lists_each_whole_hour_crossed():
    start = 10 * HOUR_MS + 1_800_000
    assert funding_hours(start, start + 1_000) == []
    assert funding_hours(start, 11 * HOUR_MS) == [11 * HOUR_MS]
    assert funding_hours(start, 13 * HOUR_MS + 5) == [11 * HOUR_MS, 12 * HOUR_MS, 13 * HOUR_MS]
    assert funding_hours(11 * HOUR_MS, 11 * HOUR_MS) == []
    assert funding_hours(11 * HOUR_MS, 12 * HOUR_MS) == [12 * HOUR_MS]
