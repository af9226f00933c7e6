"""The official hyperliquid-python-sdk as an independent client of the loopback simulator.

`hyperliquid.info.Info` and `hyperliquid.exchange.Exchange` talk to a simulator subprocess on a free
port (`simulator` fixture) with a fresh eth_account wallet: market reads, the order lifecycle,
refusal of tampered signatures and replayed nonces, and the SDK's own websocket subscriptions.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils import signing as sdk
from hyperliquid.utils.types import Cloid

from tests.fixtures.sim_fixtures import SimulatorProcess

Trader = tuple[Exchange, Info, str]
COIN = "ETH"
WAIT_SECS = 20.0


def _wait_for(
    condition: Callable[[], Any], what: str, timeout: float = WAIT_SECS, poll_secs: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll_secs)


def _px(info: Info, coin: str, factor: float) -> float:
    """A valid limit price `factor` × mid, rounded as the SDK rounds slippage prices."""
    mid = float(info.all_mids()[coin])
    szd = info.asset_to_sz_decimals[info.name_to_asset(coin)]
    return round(float(f"{mid * factor:.5g}"), 6 - szd)


def _sz(info: Info, coin: str, usd: float) -> float:
    mid = float(info.all_mids()[coin])
    szd = info.asset_to_sz_decimals[info.name_to_asset(coin)]
    return round(usd / mid, szd)


@pytest.fixture
def trader(simulator: SimulatorProcess) -> Trader:
    wallet = eth_account.Account.create()
    exchange = Exchange(wallet, simulator.base_url)  # builds its own Info: POSTs spotMeta and meta
    info = exchange.info
    info.user_state(wallet.address)  # first appearance: the venue funds the address
    return exchange, info, wallet.address


def test_sdk_info_reads_market_and_fresh_account(simulator: SimulatorProcess, trader: Trader) -> None:
    _, info, address = trader
    meta = info.meta()
    names = [u["name"] for u in meta["universe"]]
    assert COIN in names and all(isinstance(u["szDecimals"], int) for u in meta["universe"])
    mids = info.all_mids()
    assert set(names) <= set(mids) and float(mids[COIN]) > 0
    now = int(time.time() * 1000)
    candles = info.candles_snapshot(COIN, "5m", now - 3 * 3_600_000, now)
    assert len(candles) >= 30
    assert all(c["T"] == c["t"] + 300_000 - 1 and c["s"] == COIN and c["i"] == "5m" for c in candles)
    state = info.user_state(address)
    assert float(state["marginSummary"]["accountValue"]) > 0 and state["assetPositions"] == []
    assert info.open_orders(address) == []
    assert info.user_fills(address) == []


def test_sdk_order_lifecycle(trader: Trader) -> None:
    exchange, info, address = trader
    sz = _sz(info, COIN, 60.0)

    resting = exchange.order(COIN, True, sz, _px(info, COIN, 0.9), {"limit": {"tif": "Gtc"}})
    oid = resting["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert [o["oid"] for o in info.open_orders(address)] == [oid]
    assert info.query_order_by_oid(address, oid)["order"]["status"] == "open"

    ioc = exchange.order(COIN, True, sz, _px(info, COIN, 1.01), {"limit": {"tif": "Ioc"}})
    filled = ioc["response"]["data"]["statuses"][0]["filled"]
    assert float(filled["totalSz"]) == sz
    fills = info.user_fills(address)
    assert fills[0]["oid"] == filled["oid"] and fills[0]["dir"] == "Open Long" and fills[0]["crossed"] is True

    opened = exchange.market_open(COIN, True, sz)
    assert "filled" in opened["response"]["data"]["statuses"][0]
    position = next(
        p["position"] for p in info.user_state(address)["assetPositions"] if p["position"]["coin"] == COIN
    )
    assert float(position["szi"]) == pytest.approx(2 * sz)
    closed = exchange.market_close(COIN)
    assert float(closed["response"]["data"]["statuses"][0]["filled"]["totalSz"]) == pytest.approx(2 * sz)
    assert info.user_state(address)["assetPositions"] == []
    assert info.user_fills(address)[0]["dir"] == "Close Long"

    assert exchange.cancel(COIN, oid)["response"]["data"]["statuses"] == ["success"]
    assert exchange.cancel(COIN, oid)["response"]["data"]["statuses"][0]["error"].startswith(
        "Order was never placed, already canceled, or filled."
    )

    cloid = Cloid.from_int(424242)
    placed = exchange.order(COIN, False, sz, _px(info, COIN, 1.1), {"limit": {"tif": "Gtc"}}, cloid=cloid)
    assert placed["response"]["data"]["statuses"][0]["resting"]["cloid"] == cloid.to_raw()
    assert info.query_order_by_cloid(address, cloid)["order"]["status"] == "open"
    assert exchange.cancel_by_cloid(COIN, cloid)["response"]["data"]["statuses"] == ["success"]
    assert info.query_order_by_cloid(address, cloid)["order"]["status"] == "canceled"

    assert exchange.update_leverage(5, COIN) == {"status": "ok", "response": {"type": "default"}}
    exchange.market_open(COIN, False, sz)
    position = info.user_state(address)["assetPositions"][0]["position"]
    assert position["leverage"] == {"type": "cross", "value": 5} and float(position["szi"]) == -sz

    bulk = exchange.bulk_orders(
        [
            {
                "coin": COIN,
                "is_buy": True,
                "sz": sz,
                "limit_px": _px(info, COIN, 0.8),
                "order_type": {"limit": {"tif": "Gtc"}},
                "reduce_only": False,
            },
            {
                "coin": COIN,
                "is_buy": True,
                "sz": sz,
                "limit_px": _px(info, COIN, 0.85),
                "order_type": {"limit": {"tif": "Alo"}},
                "reduce_only": False,
            },
            {
                "coin": COIN,
                "is_buy": True,
                "sz": sz / 100,
                "limit_px": _px(info, COIN, 0.8),
                "order_type": {"limit": {"tif": "Gtc"}},
                "reduce_only": False,
            },
        ]
    )
    statuses = bulk["response"]["data"]["statuses"]
    assert "resting" in statuses[0] and "resting" in statuses[1]
    assert statuses[2]["error"].startswith("Order")  # below $10 or below one lot: refused by the venue
    bulk_oids = [s["resting"]["oid"] for s in statuses[:2]]
    assert sorted(o["oid"] for o in info.open_orders(address)) == sorted(bulk_oids)

    too_early = exchange.schedule_cancel(int(time.time() * 1000) + 1_000)
    assert too_early["status"] == "err"
    assert exchange.schedule_cancel(int(time.time() * 1000) + 5_500)["status"] == "ok"

    def all_cancelled() -> bool:  # orderStatus weighs 2, so polling it stays far inside the rate limit
        return all(
            info.query_order_by_oid(address, o)["order"]["status"] == "scheduledCancel" for o in bulk_oids
        )

    _wait_for(all_cancelled, "the scheduled cancel to fire", poll_secs=0.25)
    assert info.open_orders(address) == [] and info.frontend_open_orders(address) == []


def _signed_order_payload(exchange: Exchange, info: Info) -> dict[str, Any]:
    order = {
        "coin": COIN,
        "is_buy": True,
        "sz": _sz(info, COIN, 40.0),
        "limit_px": _px(info, COIN, 0.9),
        "order_type": {"limit": {"tif": "Gtc"}},
        "reduce_only": False,
    }
    action = sdk.order_wires_to_order_action(
        [sdk.order_request_to_order_wire(order, info.name_to_asset(COIN))]
    )
    nonce = sdk.get_timestamp_ms()
    signature = sdk.sign_l1_action(exchange.wallet, action, None, nonce, None, False)
    return {
        "action": action,
        "nonce": nonce,
        "signature": signature,
        "vaultAddress": None,
        "expiresAfter": None,
    }


def test_sdk_tampered_signature_and_replayed_nonce_are_refused(
    simulator: SimulatorProcess, trader: Trader
) -> None:
    exchange, info, address = trader
    payload = _signed_order_payload(exchange, info)

    tampered = copy.deepcopy(payload)
    tampered["action"]["orders"][0]["s"] = sdk.float_to_wire(2 * float(payload["action"]["orders"][0]["s"]))
    answer = exchange.post("/exchange", tampered)
    assert answer["status"] == "err" and answer["response"].startswith("User or API Wallet ")
    bad_sig = copy.deepcopy(payload)
    bad_sig["signature"]["s"] = hex(int(bad_sig["signature"]["s"], 16) ^ 0xFF)
    assert exchange.post("/exchange", bad_sig)["status"] == "err"
    assert info.open_orders(address) == []

    assert exchange.post("/exchange", payload)["status"] == "ok"
    replay = exchange.post("/exchange", payload)
    assert replay == {"status": "err", "response": f"Invalid nonce: duplicate nonce {payload['nonce']}"}
    assert len(info.open_orders(address)) == 1
    assert simulator.state()["exchange_posts"] == 4


def test_sdk_websocket_receives_market_and_user_messages(simulator: SimulatorProcess) -> None:
    wallet = eth_account.Account.create()
    info = Info(simulator.base_url, skip_ws=False)
    try:
        exchange = Exchange(wallet, simulator.base_url)
        address = wallet.address.lower()
        info.user_state(address)
        got: dict[str, list[Any]] = {"allMids": [], "candle": [], "userFills": []}
        lock = threading.Lock()

        def collect(kind: str) -> Callable[[Any], None]:
            def callback(msg: Any) -> None:
                with lock:
                    got[kind].append(msg)

            return callback

        info.subscribe({"type": "allMids"}, collect("allMids"))
        info.subscribe({"type": "candle", "coin": COIN, "interval": "5m"}, collect("candle"))
        info.subscribe({"type": "userFills", "user": address}, collect("userFills"))
        _wait_for(lambda: got["allMids"], "an allMids message")
        _wait_for(lambda: got["candle"], "a candle message")
        assert float(got["allMids"][0]["data"]["mids"][COIN]) > 0
        candle = got["candle"][0]["data"]
        assert candle["s"] == COIN and candle["i"] == "5m" and candle["T"] == candle["t"] + 299_999
        snapshot = _wait_for(lambda: got["userFills"], "the userFills snapshot")[0]["data"]
        assert snapshot.get("isSnapshot") is True and snapshot["fills"] == []

        filled = exchange.market_open(COIN, True, _sz(info, COIN, 40.0))
        oid = filled["response"]["data"]["statuses"][0]["filled"]["oid"]
        live = _wait_for(
            lambda: [m for m in got["userFills"] if not m["data"].get("isSnapshot")], "a live fill"
        )
        assert live[0]["data"]["user"] == address and live[0]["data"]["fills"][0]["oid"] == oid
    finally:
        info.disconnect_websocket()


def test_sdk_approved_agent_trades_for_the_master_account(
    simulator: SimulatorProcess, trader: Trader
) -> None:
    master, info, address = trader
    result, agent_key = master.approve_agent("engine")
    assert result == {"status": "ok", "response": {"type": "default"}}
    agent = Exchange(eth_account.Account.from_key(agent_key), simulator.base_url, account_address=address)
    filled = agent.market_open(COIN, True, _sz(info, COIN, 40.0))
    oid = filled["response"]["data"]["statuses"][0]["filled"]["oid"]
    assert info.user_fills(address)[0]["oid"] == oid
    assert agent.market_close(COIN)["response"]["data"]["statuses"][0]["filled"]["oid"] > oid
    assert info.user_state(address)["assetPositions"] == []


def _scripted_session(sim: SimulatorProcess) -> dict[str, Any]:
    """Drive one simulator through a fixed SDK script on a paused clock; return what the venue recorded."""
    wallet = eth_account.Account.from_key("0x" + "5e" * 32)
    exchange = Exchange(wallet, sim.base_url)
    info = exchange.info
    info.user_state(wallet.address)
    sz = _sz(info, COIN, 80.0)
    exchange.market_open(COIN, True, sz)
    exchange.order(COIN, True, sz, _px(info, COIN, 0.999), {"limit": {"tif": "Gtc"}}, cloid=Cloid.from_int(9))
    exchange.order(COIN, False, sz, _px(info, COIN, 1.001), {"limit": {"tif": "Gtc"}})
    for _ in range(12):  # one hour of market time in 5-minute steps: resting fills and one funding
        sim.advance(bars=1)
    return {
        "fills": info.user_fills(wallet.address),
        "funding": info.user_funding_history(wallet.address, 0),
        "open": info.open_orders(wallet.address),
        "state": {k: v for k, v in info.user_state(wallet.address).items() if k != "time"},
    }


def test_same_seed_and_script_give_identical_fills(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    args = ("--speed", "0", "--start-ms", "1764000000000", "--seed", "7")
    first = _scripted_session(simulator_factory(*args))
    second = _scripted_session(simulator_factory(*args))
    assert first["fills"] and first["funding"]
    assert first == second
