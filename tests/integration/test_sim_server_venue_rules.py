"""The venue's rules over real HTTP with the official SDK as the client: whole-batch refusal of an
invalid price, the 80% price band, the scheduleCancel volume gate, and stop-loss / take-profit
trigger orders (placed, listed, modified, and fired on the price path, also through an admin price
shock while the client does nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import eth_account
import pytest
import requests
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from tests.fixtures.sim_fixtures import SimulatorProcess

COIN = "ETH"
START_MS = 1_764_000_000_000


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _px(info: Info, factor: float) -> float:
    mid = float(info.all_mids()[COIN])
    return round(float(f"{mid * factor:.5g}"), 6 - info.asset_to_sz_decimals[info.name_to_asset(COIN)])


def _sz(info: Info, usd: float) -> float:
    return round(usd / float(info.all_mids()[COIN]), info.asset_to_sz_decimals[info.name_to_asset(COIN)])


def _strict(factory: Callable[..., SimulatorProcess], *extra: str) -> tuple[SimulatorProcess, Exchange, str]:
    wallet = eth_account.Account.create()
    sim = factory("--speed", "0", "--start-ms", str(START_MS), "--rate-limit-per-min", "0",
                  "--fund", f"{wallet.address}=10000", *extra)
    return sim, Exchange(wallet, sim.base_url), wallet.address


def test_invalid_price_refuses_whole_batch_and_band_refuses_one_order(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    _sim, exchange, address = _strict(simulator_factory)
    info = exchange.info
    sz = _sz(info, 50)
    good = {"coin": COIN, "is_buy": True, "sz": sz, "limit_px": _px(info, 0.99),
            "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}
    bad = good | {"limit_px": round(_px(info, 0.98) + 1e-7, 7)}  # far more than 5 significant figures
    answer = exchange.bulk_orders([good, bad])
    assert answer["response"]["data"]["statuses"] == [{"error": "Order has invalid price."}]
    assert info.open_orders(address) == []
    far = good | {"limit_px": _px(info, 1.9)}
    statuses = exchange.bulk_orders([good, far])["response"]["data"]["statuses"]
    assert "resting" in statuses[0]
    assert statuses[1] == {"error": "Order price cannot be more than 80% away from the reference price"}


def test_schedule_cancel_needs_a_million_traded(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    sim, exchange, address = _strict(simulator_factory)
    when = int(time.time() * 1000) + 60_000
    assert exchange.schedule_cancel(when) == {
        "status": "err",
        "response": "Cannot set scheduled cancel time until enough volume traded. "
        "Required: $1000000. Traded: $0.",
    }
    sim.fund(address, 0.0, volume_usd=1_000_000.0)
    assert exchange.schedule_cancel(when) == {"status": "ok", "response": {"type": "default"}}


def test_stop_loss_is_listed_modified_and_fires_on_the_price_path(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    _sim, exchange, address = _strict(simulator_factory)
    info = exchange.info
    sz = _sz(info, 200)
    assert "filled" in exchange.market_open(COIN, True, sz)["response"]["data"]["statuses"][0]
    far_stop = _px(info, 0.5)
    stop = {"trigger": {"triggerPx": far_stop, "isMarket": True, "tpsl": "sl"}}
    placed = exchange.order(COIN, False, sz, far_stop, stop, reduce_only=True)
    oid = placed["response"]["data"]["statuses"][0]["resting"]["oid"]
    listed = info.frontend_open_orders(address)
    assert [(o["oid"], o["orderType"], o["isTrigger"]) for o in listed] == [(oid, "Stop Market", True)]
    assert listed[0]["triggerCondition"] == f"Price below {listed[0]['triggerPx']}"

    near_stop = _px(info, 1.001)  # above the mid: "price below" holds, so it fires on the next tick
    modified = exchange.modify_order(oid, COIN, False, sz, near_stop, stop | {
        "trigger": {"triggerPx": near_stop, "isMarket": True, "tpsl": "sl"}}, reduce_only=True)
    new_oid = modified["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert new_oid != oid and info.query_order_by_oid(address, oid)["order"]["status"] == "canceled"

    _wait_for(lambda: info.user_state(address)["assetPositions"] == [], "the stop to close the position")
    closing = info.user_fills(address)[0]
    assert closing["oid"] == new_oid and closing["dir"] == "Close Long" and closing["crossed"] is True
    assert info.query_order_by_oid(address, new_oid)["order"]["status"] == "filled"
    assert info.frontend_open_orders(address) == []


def test_price_shock_through_a_position_stop_closes_the_position_without_the_client(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    sim, exchange, address = _strict(simulator_factory)
    info = exchange.info
    sz = _sz(info, 200)
    opened = exchange.market_open(COIN, True, sz)["response"]["data"]["statuses"][0]["filled"]
    stop_px = _px(info, 0.95)
    stop = {"coin": COIN, "is_buy": False, "sz": sz, "limit_px": stop_px, "reduce_only": True,
            "order_type": {"trigger": {"triggerPx": stop_px, "isMarket": True, "tpsl": "sl"}}}
    [placed] = exchange.bulk_orders([stop], grouping="positionTpsl")["response"]["data"]["statuses"]
    stop_oid = placed["resting"]["oid"]
    assert info.frontend_open_orders(address)[0]["isPositionTpsl"] is True

    moved = sim.shock(COIN, -8.0)  # the client does nothing from here on
    assert moved["mid_after"] == pytest.approx(moved["mid_before"] * 0.92, rel=1e-3)
    _wait_for(lambda: info.user_state(address)["assetPositions"] == [], "the venue's stop to close it")
    recorded = {o["oid"]: o["status"] for o in sim.orders(address)}
    assert recorded == {opened["oid"]: "filled", stop_oid: "filled"}
    assert float(info.user_fills(address)[0]["px"]) < stop_px
    with pytest.raises(requests.HTTPError):
        sim.shock(COIN, -100)


def test_shock_liquidates_an_overlevered_account(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--start-ms", str(START_MS), "--rate-limit-per-min", "0",
                            "--fund", f"{wallet.address}=500")
    exchange = Exchange(wallet, sim.base_url)
    info = exchange.info
    max_lev = next(u["maxLeverage"] for u in info.meta()["universe"] if u["name"] == COIN)
    assert exchange.update_leverage(max_lev, COIN)["status"] == "ok"
    sz = _sz(info, 450 * max_lev)
    assert "filled" in exchange.market_open(COIN, True, sz)["response"]["data"]["statuses"][0]
    sim.shock(COIN, -100.0 / max_lev)  # loses about the whole margin: far below maintenance
    _wait_for(lambda: info.user_state(wallet.address)["assetPositions"] == [], "the liquidation")
    fill = info.user_fills(wallet.address)[0]
    assert fill["liquidation"]["liquidatedUser"] == wallet.address.lower()
    # the gap left less than 2/3 of the maintenance margin: the backstop vault takes the position
    assert fill["liquidation"]["method"] == "backstop" and fill["dir"] == "Close Long"
    assert info.user_state(wallet.address)["marginSummary"]["accountValue"] == "0.0"
