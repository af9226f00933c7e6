"""Orders on the real market replay: a stop fires, and a resting buy fills at its limit, when the mid
path went through their price between two market ticks, even though the mid sampled at both ticks
is on the other side."""

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


class Replay:
    """An exchange core over one synthetic coin on a manual clock, with one funded SDK wallet."""

    def __init__(self) -> None:
        clock = MarketClock(start_ms=START, speed=0)
        self.market = Market(synthetic_series(1, seed=11), clock, interval_ms=IV, seed=11, history_bars=10)
        self.coin = self.market.coins()[0]
        self.core = ExchangeCore(self.market, fund_any_usd=None, taker_fee_rate=0.00045,
                                 maker_fee_rate=0.00015, is_mainnet=False, wall_clock_ms=lambda: START)
        self.wallet = eth_account.Account.create()
        self.core.fund(self.wallet.address, 100_000.0)
        self._nonce = iter(range(START, START + 100))
        self.szd = self.market.sz_decimals(self.coin)
        self.mid = float(self.market.mids_at(START)[0])

    def send(self, order: dict[str, Any]) -> Any:
        action = sdk.order_wires_to_order_action([sdk.order_request_to_order_wire(order, 0)])
        n = next(self._nonce)
        sig = sdk.sign_l1_action(self.wallet, action, None, n, None, False)
        status, body = self.core.handle_exchange(
            {"action": action, "nonce": n, "signature": sig, "vaultAddress": None, "expiresAfter": None},
            self.market.now_ms())
        assert status == 200 and body["status"] == "ok", body
        return body["response"]["data"]["statuses"][0]

    def info(self, kind: str) -> Any:
        return self.core.handle_user_info({"type": kind, "user": self.wallet.address}, self.market.now_ms())

    def jump(self, ms: int) -> float:
        """Move the clock, tick, and return the mid the tick saw."""
        self.market.clock.advance(ms)
        self.core.on_market_tick(self.market.now_ms())
        return float(self.market.mids_at(self.market.now_ms())[0])


def test_stop_fires_on_a_dip_between_two_ticks() -> None:
    r = Replay()
    sz = round(1_000 / r.mid, r.szd)
    buy = {"coin": r.coin, "is_buy": True, "sz": sz, "limit_px": round_price(r.mid * 1.01, r.szd),
           "order_type": {"limit": {"tif": "Ioc"}}, "reduce_only": False}
    assert "filled" in r.send(buy)
    r.core.on_market_tick(r.market.now_ms())
    jump, stop = _find_dip(r.market, r.coin)
    sell = {"coin": r.coin, "is_buy": False, "sz": sz, "limit_px": stop, "reduce_only": True,
            "order_type": {"trigger": {"triggerPx": stop, "isMarket": True, "tpsl": "sl"}}}
    assert "resting" in r.send(sell)
    assert r.jump(jump) > stop  # the mid at the tick never shows the dip
    assert r.info("clearinghouseState")["assetPositions"] == []


def test_resting_buy_fills_at_its_limit_on_a_dip_between_two_ticks() -> None:
    r = Replay()
    r.core.on_market_tick(r.market.now_ms())
    jump, limit = _find_dip(r.market, r.coin)
    sz = round(1_000 / r.mid, r.szd)
    buy = {"coin": r.coin, "is_buy": True, "sz": sz, "limit_px": limit,
           "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}
    assert "resting" in r.send(buy)
    assert r.jump(jump) > limit
    [fill] = r.info("userFills")
    assert float(fill["px"]) == limit and fill["crossed"] is False
