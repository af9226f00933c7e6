"""Trigger orders on the real market replay: a stop fires when the mid path went through its price
between two market ticks, even though the mid sampled at both ticks is on the safe side."""

from __future__ import annotations

from typing import Any

import eth_account
from hyperliquid.utils import signing as sdk

from simulator.exchange import ExchangeCore
from simulator.market import Market, MarketClock
from simulator.matching import round_price
from simulator.series import synthetic_series

START = 1_764_000_000_000
IV = 300_000


def _find_dip(market: Market, coin: str) -> tuple[int, float]:
    """A jump of the clock (ms) from now, and a price the path dips below during the jump while the
    mid at both ends stays above it."""
    t0 = market.now_ms()
    for jump in range(60_000, 40 * IV, 60_000):
        low, _ = market.range_between(coin, t0, t0 + jump)
        ends = min(market.mids_at(t0)[0], market.mids_at(t0 + jump)[0])
        stop = round_price(low + (ends - low) * 0.5, market.sz_decimals(coin))
        if low < stop < ends * 0.999:
            return jump, stop
    raise AssertionError("no dip found in 40 bars of the synthetic path")


def test_stop_fires_on_a_dip_between_two_ticks() -> None:
    clock = MarketClock(start_ms=START, speed=0)
    market = Market(synthetic_series(1, seed=11), clock, interval_ms=IV, seed=11, history_bars=10)
    coin = market.coins()[0]
    core = ExchangeCore(market, fund_any_usd=None, taker_fee_rate=0.00045, maker_fee_rate=0.00015,
                        is_mainnet=False, wall_clock_ms=lambda: START)
    wallet = eth_account.Account.create()
    core.fund(wallet.address, 100_000.0)
    nonce = iter(range(START, START + 100))

    def send(action: dict[str, Any]) -> Any:
        n = next(nonce)
        sig = sdk.sign_l1_action(wallet, action, None, n, None, False)
        status, body = core.handle_exchange(
            {"action": action, "nonce": n, "signature": sig, "vaultAddress": None, "expiresAfter": None},
            market.now_ms())
        assert status == 200 and body["status"] == "ok", body
        return body["response"]["data"]["statuses"][0]

    szd = market.sz_decimals(coin)
    mid = float(market.mids_at(START)[0])
    sz = round(1_000 / mid, szd)
    buy = {"coin": coin, "is_buy": True, "sz": sz, "limit_px": round_price(mid * 1.01, szd),
           "order_type": {"limit": {"tif": "Ioc"}}, "reduce_only": False}
    assert "filled" in send(sdk.order_wires_to_order_action([sdk.order_request_to_order_wire(buy, 0)]))
    core.on_market_tick(market.now_ms())
    jump, stop = _find_dip(market, coin)
    sell = {"coin": coin, "is_buy": False, "sz": sz, "limit_px": stop, "reduce_only": True,
            "order_type": {"trigger": {"triggerPx": stop, "isMarket": True, "tpsl": "sl"}}}
    assert "resting" in send(sdk.order_wires_to_order_action([sdk.order_request_to_order_wire(sell, 0)]))
    market.clock.advance(jump)
    assert float(market.mids_at(market.now_ms())[0]) > stop  # the mid at the tick never shows the dip
    core.on_market_tick(market.now_ms())
    state = core.handle_user_info({"type": "clearinghouseState", "user": wallet.address}, market.now_ms())
    assert state["assetPositions"] == []
