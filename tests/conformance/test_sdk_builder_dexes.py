"""The official SDK (hyperliquid-python-sdk) against `python -m simulator --builder-dexes`: HIP-3
builder-deployed perp dexes as the SDK sees them. `Info`/`Exchange(perp_dexs=[...])` read `perpDexs`
and each dex's `meta`, number the assets ``110000 + i * 10000 + index``, and place, query and cancel
orders on a `dex:COIN` asset; per-dex clearinghouse state, open orders and mids; WS candles and
allMids for a builder dex. The account is funded explicitly (the strict venue).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from tests.fixtures.sim_fixtures import SimulatorProcess

BASE_TAKER = 0.00045


@pytest.fixture
def venue(simulator_factory: Callable[..., SimulatorProcess]) -> tuple[SimulatorProcess, Any]:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--builder-dexes", "2", "--markets-per-dex", "6",
                            "--fund", f"{wallet.address}=10000")
    return sim, wallet


def _px(px: float) -> float:
    """A price the venue accepts: 5 significant figures."""
    return float(f"{px:.5g}")


def test_sdk_numbers_builder_dex_assets_from_perp_dexs_and_meta(venue: tuple[SimulatorProcess, Any]) -> None:
    sim, _ = venue
    dexes = sim.info({"type": "perpDexs"}).json()
    assert dexes[0] is None and [d["name"] for d in dexes[1:]] == ["xyz", "flx"]
    info = Info(sim.base_url, skip_ws=True, perp_dexs=["", "xyz", "flx"])
    flx = info.meta(dex="flx")
    assert flx["collateralToken"] == 360 and all(a["name"].startswith("flx:") for a in flx["universe"])
    assert len(flx["universe"]) == 6 and "kBONK" not in str(info.meta())
    assert info.coin_to_asset["xyz:TSLA"] == 110000
    assert info.coin_to_asset["flx:TSLA"] == 120000 and info.coin_to_asset["flx:AAPL"] == 120002
    assert info.coin_to_asset[info.meta()["universe"][0]["name"]] == 0
    assert set(info.all_mids("flx")) == {a["name"] for a in flx["universe"]}
    assert "flx:TSLA" not in info.all_mids()
    meta, ctxs = sim.info({"type": "metaAndAssetCtxs", "dex": "xyz"}).json()
    assert len(ctxs) == len(meta["universe"]) == 6
    assert sim.info({"type": "meta", "dex": "nope"}).status_code == 422


def test_sdk_places_queries_and_cancels_an_order_on_a_builder_dex(
    venue: tuple[SimulatorProcess, Any],
) -> None:
    sim, wallet = venue
    exchange = Exchange(wallet, sim.base_url, perp_dexs=["", "flx"])
    info = exchange.info
    coin = "flx:kBONK"  # mixed case survives: the venue spells it so, and so must every answer
    mid = float(info.all_mids("flx")[coin])
    sz_decimals = info.asset_to_sz_decimals[info.name_to_asset(coin)]
    size = round(50 / mid, sz_decimals)
    placed = exchange.order(coin, True, size, _px(mid * 0.9), {"limit": {"tif": "Gtc"}})
    assert placed["status"] == "ok", placed
    oid = placed["response"]["data"]["statuses"][0]["resting"]["oid"]
    [listed] = info.open_orders(wallet.address, dex="flx")
    assert listed["coin"] == coin and listed["oid"] == oid
    assert info.open_orders(wallet.address) == []  # the original dex's book holds nothing of it
    assert [o["oid"] for o in info.frontend_open_orders(wallet.address, dex="flx")] == [oid]
    status = info.query_order_by_oid(wallet.address, oid)
    assert status["order"]["order"]["coin"] == coin and status["order"]["status"] == "open"
    cancelled = exchange.cancel(coin, oid)
    assert cancelled["response"]["data"]["statuses"] == ["success"]
    assert info.open_orders(wallet.address, dex="flx") == []


def test_sdk_market_order_on_a_builder_dex_books_per_dex_state_and_fees(
    venue: tuple[SimulatorProcess, Any],
) -> None:
    sim, wallet = venue
    exchange = Exchange(wallet, sim.base_url, perp_dexs=["", "flx"])
    coin = "flx:GOLD"
    mid = float(exchange.info.all_mids("flx")[coin])
    size = round(100 / mid, exchange.info.asset_to_sz_decimals[exchange.info.name_to_asset(coin)])
    bought = exchange.market_open(coin, True, size)
    assert bought["status"] == "ok" and "filled" in bought["response"]["data"]["statuses"][0], bought
    flx = exchange.info.user_state(wallet.address, dex="flx")
    [position] = flx["assetPositions"]
    assert position["position"]["coin"] == coin and float(position["position"]["szi"]) == size
    assert float(flx["marginSummary"]["totalNtlPos"]) > 0
    main = exchange.info.user_state(wallet.address)
    assert main["assetPositions"] == [] and float(main["marginSummary"]["totalNtlPos"]) == 0
    [fill] = exchange.info.user_fills(wallet.address)
    assert fill["coin"] == coin and fill["feeToken"] == "USDH"  # flx settles in its own collateral
    notional = float(fill["px"]) * float(fill["sz"])
    assert float(fill["fee"]) == pytest.approx(notional * BASE_TAKER * 1.5, abs=2e-6)  # fee scale 0.5
    closed = exchange.market_close(coin)
    assert closed["status"] == "ok", closed
    assert exchange.info.user_state(wallet.address, dex="flx")["assetPositions"] == []


def test_sdk_websocket_streams_builder_dex_candles_and_mids(venue: tuple[SimulatorProcess, Any]) -> None:
    sim, _ = venue
    info = Info(sim.base_url, perp_dexs=["", "xyz"])
    got: queue.Queue[Any] = queue.Queue()
    try:
        info.subscribe({"type": "candle", "coin": "xyz:GOLD", "interval": "5m"}, got.put)
        candle = got.get(timeout=10)
        assert candle["channel"] == "candle" and candle["data"]["s"] == "xyz:GOLD"
        info.subscribe({"type": "allMids", "dex": "xyz"}, got.put)
        sim.advance(ms=60_000)
        mids = got.get(timeout=10)
        while mids["channel"] != "allMids":
            mids = got.get(timeout=10)
        assert set(mids["data"]["mids"]) == set(info.all_mids("xyz"))
    finally:
        info.disconnect_websocket()
