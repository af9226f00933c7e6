"""Shared pieces for the exchange-core unit tests: a hand-written fake market implementing the
MarketView protocol, and a client that signs real actions with the official SDK's signing functions
and a fresh eth_account wallet. Holds no tests itself.
"""

from __future__ import annotations

from typing import Any

import eth_account
from hyperliquid.utils import signing as sdk
from hyperliquid.utils.types import Cloid

from simulator.dexes import DexTable
from simulator.exchange import ExchangeCore

T0_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z, an hour boundary
TAKER = 0.00045
MAKER = 0.00015


class FakeMarket:
    """Three coins with settable mids; book: 1 bp half-spread, levels 1 bp apart of growing size."""

    def __init__(self) -> None:
        self._coins = ["BTC", "ETH", "DOGE"]
        self._szd = {"BTC": 5, "ETH": 4, "DOGE": 0}
        self._maxlev = {"BTC": 40, "ETH": 25, "DOGE": 10}
        self.mids = {"BTC": 100_000.0, "ETH": 4_000.0, "DOGE": 0.2}
        self.funding = {"BTC": 0.0001, "ETH": -0.00005, "DOGE": 0.0}
        self.level_usd = 50_000.0
        self.clock_ms = T0_MS
        self.dexes = DexTable(self._coins)

    def coins(self) -> list[str]:
        return list(self._coins)

    def asset_of(self, coin: str) -> int:
        return self.dexes.asset_of(coin)

    def coin_of(self, asset: int) -> str | None:
        return self.dexes.coin_of(asset)

    def sz_decimals(self, coin: str) -> int:
        return self._szd[coin]

    def max_leverage(self, coin: str) -> int:
        return self._maxlev[coin]

    def now_ms(self) -> int:
        return self.clock_ms

    def mid(self, coin: str) -> float:
        return self.mids[coin]

    def book(self, coin: str, depth: int = 20) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        mid = self.mids[coin]
        bids, asks = [], []
        for i in range(depth):
            off = 0.0001 * (1 + i)
            sz = round(self.level_usd * (1 + i) / mid, self._szd[coin])
            bids.append((round(mid * (1 - off), 6), sz))
            asks.append((round(mid * (1 + off), 6), sz))
        return bids, asks

    def funding_rate(self, coin: str) -> float:
        return self.funding[coin]

    def range_between(self, coin: str, start_ms: int, end_ms: int) -> tuple[float, float]:
        """The fake has no path between ticks: its range is the current mid."""
        return self.mids[coin], self.mids[coin]


class Venue:
    """An ExchangeCore over a FakeMarket with a controllable wall clock and a recording event sink."""

    def __init__(
        self,
        *,
        is_mainnet: bool = False,
        fund_any_usd: float | None = 10_000.0,
        initial_requests: int = 10_000,
        schedule_cancel_min_volume_usd: float = 0.0,
    ) -> None:
        self.market = FakeMarket()
        self.wall_ms = T0_MS
        self.events: list[tuple[str, str, Any]] = []
        self.core = ExchangeCore(
            self.market,
            fund_any_usd=fund_any_usd,
            taker_fee_rate=TAKER,
            maker_fee_rate=MAKER,
            is_mainnet=is_mainnet,
            event_sink=lambda ch, user, payload: self.events.append((ch, user, payload)),
            wall_clock_ms=lambda: self.wall_ms,
            initial_requests=initial_requests,
            schedule_cancel_min_volume_usd=schedule_cancel_min_volume_usd,
        )
        self.is_mainnet = is_mainnet

    def info(self, kind: str, user: str, **extra: Any) -> Any:
        return self.core.handle_user_info({"type": kind, "user": user, **extra}, self.market.now_ms())

    def tick(self, **mids: float) -> None:
        self.market.mids.update(mids)
        self.core.on_market_tick(self.market.now_ms())


class Client:
    """Signs actions exactly as hyperliquid.exchange.Exchange does and posts them to the core."""

    def __init__(
        self, venue: Venue, wallet: Any | None = None, *, register: bool = True, deposit: float | None = None
    ) -> None:
        self.venue = venue
        self.wallet = wallet or eth_account.Account.create()
        self.address = self.wallet.address.lower()
        self._nonce = venue.wall_ms
        if register:
            venue.core.fund(self.address, deposit)

    def next_nonce(self) -> int:
        self._nonce = max(self._nonce + 1, self.venue.wall_ms)
        return self._nonce

    def signed(self, action: dict, nonce: int | None = None) -> dict:
        nonce = self.next_nonce() if nonce is None else nonce
        sig = sdk.sign_l1_action(self.wallet, action, None, nonce, None, self.venue.is_mainnet)
        return {
            "action": action,
            "nonce": nonce,
            "signature": sig,
            "vaultAddress": None,
            "expiresAfter": None,
        }

    def post(self, body: dict) -> tuple[int, Any]:
        return self.venue.core.handle_exchange(body, self.venue.market.now_ms())

    def send(self, action: dict, nonce: int | None = None) -> Any:
        status, body = self.post(self.signed(action, nonce))
        assert status == 200, body
        return body

    @staticmethod
    def order_wire(
        coin: str,
        is_buy: bool,
        sz: float,
        px: float,
        tif: str = "Gtc",
        *,
        reduce_only: bool = False,
        cloid: str | None = None,
    ) -> dict:
        asset = ["BTC", "ETH", "DOGE"].index(coin)
        req: dict[str, Any] = {
            "coin": coin,
            "is_buy": is_buy,
            "sz": sz,
            "limit_px": px,
            "order_type": {"limit": {"tif": tif}},
            "reduce_only": reduce_only,
        }
        if cloid is not None:
            req["cloid"] = Cloid(cloid)
        return sdk.order_request_to_order_wire(req, asset)

    def order(self, coin: str, is_buy: bool, sz: float, px: float, tif: str = "Gtc", **kw: Any) -> dict:
        """Place one order; return its status entry."""
        body = self.send(sdk.order_wires_to_order_action([self.order_wire(coin, is_buy, sz, px, tif, **kw)]))
        assert body["status"] == "ok", body
        return body["response"]["data"]["statuses"][0]

    def bulk(self, wires: list[dict]) -> list[Any]:
        body = self.send(sdk.order_wires_to_order_action(wires))
        return body["response"]["data"]["statuses"]

    def cancel(self, coin: str, oid: int) -> Any:
        asset = ["BTC", "ETH", "DOGE"].index(coin)
        return self.send({"type": "cancel", "cancels": [{"a": asset, "o": oid}]})

    def cancel_by_cloid(self, coin: str, cloid: str) -> Any:
        asset = ["BTC", "ETH", "DOGE"].index(coin)
        return self.send({"type": "cancelByCloid", "cancels": [{"asset": asset, "cloid": cloid}]})

    def update_leverage(self, coin: str, leverage: int, is_cross: bool = True) -> Any:
        asset = ["BTC", "ETH", "DOGE"].index(coin)
        return self.send(
            {"type": "updateLeverage", "asset": asset, "isCross": is_cross, "leverage": leverage}
        )

    def schedule_cancel(self, when: int | None) -> Any:
        action: dict[str, Any] = {"type": "scheduleCancel"}
        if when is not None:
            action["time"] = when
        return self.send(action)

    def state(self) -> dict:
        return self.venue.info("clearinghouseState", self.address)

    def position(self, coin: str) -> dict | None:
        for entry in self.state()["assetPositions"]:
            if entry["position"]["coin"] == coin:
                return entry["position"]
        return None
